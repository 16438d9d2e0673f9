//! The build-time model: replays the jobs a build recorded (see
//! `nodeos_build::jobrec`) on N workers, with their dependencies respected,
//! and gives the makespan.
//!
//! Dependencies are taken from the record, not guessed from file names:
//! - jobs keep the tree make gave them: a recursive make is a job whose
//!   own time (parsing, deciding) runs before its children and after them;
//! - within one make, jobs keep their recorded order where it matters. A
//!   *serial step* (a link of a program, a generator such as mksnapshot or
//!   torque, any other non-compile command of half a second or more, or a
//!   recursive make that contains one) waits for every job recorded before
//!   it and every job after it waits for it. An *archive* (ar, ld -r)
//!   waits for every job before it. Compiles and short commands wait only
//!   for the last serial step before them and for the previous line of
//!   their own target;
//! - except where the record shows otherwise: a job that started before
//!   another ended ran beside it, so did not wait for it (a -j2 build's
//!   compiles beside a link or a generator). Such a job waits for the last
//!   serial step that had ended when it started, and a serial step for the
//!   jobs that had ended; the others stay for the next one to wait for. A
//!   -j1 record shows no overlap and keeps every rule above;
//! - the workers pick ready jobs in recorded order, as make does.
//!
//! So between two serial steps every compile may run at once: the model is
//! optimistic there (make could not always start them all), and pessimistic
//! across serial steps (a compile recorded after a generator is assumed to
//! need its output).
//!
//! Jobs side by side run slower than alone (the cores share caches, memory
//! bandwidth, often a physical core): the [`Contention`] factor, measured
//! from the compiles a -j1 and a -j2 build of the same tree both ran. Each
//! recorded job is first brought back to its time alone (by the share of
//! its time another job ran beside it in the record), then replayed at that
//! speed when it starts alone and at the contended speed when it starts
//! beside another job. Checked against real -j1 and -j2 kernel builds by
//! `cargo xtask bench --model --check`.

use nodeos_build::jobrec::{Job, Record};
use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

/// A non-compile command at least this long is a serial step.
pub const SERIAL_STEP_SECS: f64 = 0.5;

/// How much longer a job takes when another job runs beside it on the same
/// machine than when it runs alone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Contention {
    pub factor: f64,
    /// How many compiles it was measured on (0: not measured).
    pub compiles: usize,
}

impl Contention {
    /// Jobs as fast side by side as alone.
    pub const NONE: Contention = Contention {
        factor: 1.0,
        compiles: 0,
    };
}

/// The contention factor measured from two records of the same build, one
/// made with -j1 and one with more jobs: the summed time of the compiles
/// both ran (same target, same occurrence), the parallel record's over the
/// serial one's. `None` without matched compiles.
pub fn contention(serial: &Record, parallel: &Record) -> Option<Contention> {
    fn compiles(rec: &Record) -> HashMap<(&str, usize), f64> {
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let mut out = HashMap::new();
        for j in &rec.jobs {
            if j.target.is_empty() || classify(j) != JobKind::Compile {
                continue;
            }
            let n = seen.entry(j.target.as_str()).or_default();
            out.insert((j.target.as_str(), *n), j.secs());
            *n += 1;
        }
        out
    }
    let a = compiles(serial);
    let b = compiles(parallel);
    let (mut alone, mut beside, mut n) = (0.0, 0.0, 0);
    for (k, secs) in &a {
        if let Some(p) = b.get(k) {
            alone += secs;
            beside += p;
            n += 1;
        }
    }
    (n > 0 && alone > 0.0).then(|| Contention {
        factor: beside / alone,
        compiles: n,
    })
}

/// What a recorded job is, for its dependencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// `-c`/`-S` to an object: independent of its neighbours.
    Compile,
    /// `ar`, `ranlib`, `ld -r`: collects what came before it.
    Archive,
    /// A compiler driver or `ld` writing a program: serial.
    Link,
    /// Any other command of [`SERIAL_STEP_SECS`] or more: serial.
    Generator,
    /// Any other short command (echo, mkdir, touch, cp…).
    Trivial,
}

/// The simple commands of a shell line (split at `;`, `&`, `|`, `(`,
/// `)`), each as its words with quotes and backslashes removed, past
/// leading variable assignments and `exec`. A quoted separator stays text:
/// `printf '%s' 'gcc -c x.c'` is one command of two arguments.
pub fn commands(line: &str) -> Vec<Vec<String>> {
    let mut reader = CommandReader::default();
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('\''), '\'') | (Some('"'), '"') => quote = None,
            (Some('\''), c) => reader.push(c),
            (_, '\\') => reader.push(chars.next().unwrap_or('\\')),
            (Some(_), c) => reader.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                reader.in_word = true;
            }
            (None, ';' | '&' | '|' | '(' | ')') => reader.end_command(),
            (None, c) if c.is_whitespace() => reader.end_word(),
            (None, c) => reader.push(c),
        }
    }
    reader.end_command();
    reader.commands
}

/// The program each simple command of a shell line runs (its first word;
/// see [`commands`]).
pub fn programs(line: &str) -> Vec<String> {
    commands(line)
        .into_iter()
        .filter_map(|c| c.into_iter().next())
        .collect()
}

/// [`commands`]' state: the word being read and the command it goes in.
#[derive(Default)]
struct CommandReader {
    commands: Vec<Vec<String>>,
    command: Vec<String>,
    word: String,
    in_word: bool,
}

impl CommandReader {
    fn push(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }

    fn end_word(&mut self) {
        if !self.in_word {
            return;
        }
        let word = std::mem::take(&mut self.word);
        self.in_word = false;
        let assignment = word.split_once('=').is_some_and(|(k, _)| {
            !k.is_empty() && k.chars().all(|c| c == '_' || c.is_ascii_alphanumeric())
        });
        if self.command.is_empty() && (assignment || word == "exec") {
            return;
        }
        self.command.push(word);
    }

    fn end_command(&mut self) {
        self.end_word();
        if !self.command.is_empty() {
            self.commands.push(std::mem::take(&mut self.command));
        }
    }
}

fn program_name(w: &str) -> &str {
    w.rsplit('/').next().unwrap_or(w)
}

fn is_compiler(w: &str) -> bool {
    let n = program_name(w);
    ["gcc", "g++", "cc", "c++", "xgcc", "clang", "clang++"]
        .iter()
        .any(|c| n == *c || n.ends_with(&format!("-{c}")))
}

fn is_linker(w: &str) -> bool {
    let n = program_name(w);
    n == "ld" || n.ends_with("-ld") || n == "ld.bfd" || n == "ld.gold"
}

fn is_archiver(w: &str) -> bool {
    let n = program_name(w);
    n == "ar" || n.ends_with("-ar") || n == "ranlib" || n.ends_with("-ranlib")
}

/// Whether a program runs the command given in its arguments: a compiler
/// launcher, or one of [`COMMAND_RUNNERS`].
fn runs_a_command(w: &str) -> bool {
    use nodeos_build::launcher::Kind;
    Kind::of_program(std::path::Path::new(w)) != Kind::Other
        || COMMAND_RUNNERS.contains(&program_name(w))
}

/// Programs other than launchers that run the command in their arguments.
const COMMAND_RUNNERS: &[&str] = &["xargs", "env", "nice"];

/// The tool a simple command runs and its arguments: past launchers and
/// [`COMMAND_RUNNERS`], and their options.
fn tool(command: &[String]) -> Option<(&str, &[String])> {
    let mut rest = command;
    while let Some((first, args)) = rest.split_first() {
        if !runs_a_command(first) {
            return Some((first.as_str(), args));
        }
        rest = args;
        while rest.first().is_some_and(|w| w.starts_with('-')) {
            rest = &rest[1..];
        }
    }
    None
}

/// kbuild announces each command with a short tag (`echo '  CC      x.o'`)
/// before a long preamble of traps, so a record's head may hold the tag but
/// not the compiler: the tag says what the command is.
fn kbuild_kind(commands: &[Vec<String>], target: &str) -> Option<JobKind> {
    let echo = commands.iter().find(|c| c[0] == "echo")?;
    let tag = echo.get(1)?.split_whitespace().next()?;
    match tag {
        "CC" | "AS" | "CXX" if target.ends_with(".o") => Some(JobKind::Compile),
        "AR" => Some(JobKind::Archive),
        _ => None,
    }
}

/// What a recorded job is, from the programs its shell line runs. When the
/// record keeps only the head and tail of a long line, the head's last
/// command goes on in the tail: the tail's words count as its arguments.
pub fn classify(job: &Job) -> JobKind {
    let mut cmds = commands(&job.head);
    if let Some(kind) = kbuild_kind(&cmds, &job.target) {
        return kind;
    }
    if let Some(last) = cmds.last_mut() {
        last.extend(
            job.tail
                .split_whitespace()
                .map(|w| w.trim_matches(['\'', '"']).to_owned()),
        );
    }
    let tools: Vec<(&str, &[String])> = cmds.iter().filter_map(|c| tool(c)).collect();
    let has = |args: &[String], flag: &str| args.iter().any(|a| a == flag);
    if job.target.ends_with(".a")
        || tools
            .iter()
            .any(|(t, args)| is_archiver(t) || (is_linker(t) && has(args, "-r")))
    {
        return JobKind::Archive;
    }
    let compiles = |args: &[String]| has(args, "-c") || has(args, "-S");
    if tools
        .iter()
        .any(|(t, args)| is_compiler(t) && compiles(args))
    {
        return JobKind::Compile;
    }
    if tools
        .iter()
        .any(|(t, args)| (is_compiler(t) || is_linker(t)) && has(args, "-o"))
    {
        return JobKind::Link;
    }
    if job.secs() >= SERIAL_STEP_SECS {
        JobKind::Generator
    } else {
        JobKind::Trivial
    }
}

/// The jobs as a graph: nodes with durations and the nodes they wait for.
#[derive(Debug, Default)]
pub struct Graph {
    /// Recorded duration.
    pub secs: Vec<f64>,
    /// For a job: the share of its recorded time another job ran beside it
    /// (0 to 1). `None` for make's own time, which is replayed as recorded.
    pub beside: Vec<Option<f64>>,
    /// Recorded start: the order workers pick ready nodes in.
    pub order: Vec<f64>,
    pub deps: Vec<Vec<usize>>,
    pub kinds: HashMap<&'static str, usize>,
}

impl Graph {
    fn node(&mut self, secs: f64, order: f64) -> usize {
        self.secs.push(secs.max(0.0));
        self.beside.push(None);
        self.order.push(order);
        self.deps.push(Vec::new());
        self.secs.len() - 1
    }
}

/// An item among siblings: a job or a recursive make, as its entry and
/// exit nodes.
struct Item {
    entry: usize,
    exit: usize,
    serial: bool,
    collects: bool,
    target: String,
    /// Recorded start and end.
    start: f64,
    end: f64,
}

/// Timestamps closer than this are one instant: a -j1 build's next job
/// starts as the last one ends.
const SAME_INSTANT: f64 = 0.01;

/// Length of the union of intervals.
fn union_len(mut iv: Vec<(f64, f64)>) -> f64 {
    iv.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(Ordering::Equal));
    let mut total = 0.0;
    let mut cur: Option<(f64, f64)> = None;
    for (s, e) in iv {
        match cur {
            Some((cs, ce)) if s <= ce => cur = Some((cs, ce.max(e))),
            Some((cs, ce)) => {
                total += ce - cs;
                cur = Some((s, e));
            }
            None => cur = Some((s, e)),
        }
    }
    if let Some((cs, ce)) = cur {
        total += ce - cs;
    }
    total
}

struct Builder<'a> {
    jobs: &'a [Job],
    children: HashMap<Option<&'a str>, Vec<usize>>,
    /// Per leaf job: the share of its time another leaf job ran.
    beside: HashMap<usize, f64>,
    g: Graph,
}

/// For each of `leaves` (indices into `jobs`): the share of its time at
/// least one other of them ran.
fn share_beside(jobs: &[Job], leaves: &[usize]) -> HashMap<usize, f64> {
    // The times when two or more leaves run, from a sweep over starts and
    // ends.
    let mut events: Vec<(f64, i32)> = leaves
        .iter()
        .flat_map(|&i| [(jobs[i].start, 1), (jobs[i].end.max(jobs[i].start), -1)])
        .collect();
    events.sort_by(|a, b| {
        a.0.partial_cmp(&b.0)
            .unwrap_or(Ordering::Equal)
            .then(a.1.cmp(&b.1))
    });
    let mut crowded: Vec<(f64, f64)> = Vec::new();
    let mut active = 0;
    let mut since = 0.0;
    for (t, d) in events {
        if active >= 2 && t > since {
            crowded.push((since, t));
        }
        active += d;
        since = t;
    }
    leaves
        .iter()
        .map(|&i| {
            let (s, e) = (jobs[i].start, jobs[i].end);
            if e <= s {
                return (i, 0.0);
            }
            let from = crowded.partition_point(|c| c.1 <= s);
            let mut overlap = 0.0;
            for c in &crowded[from..] {
                if c.0 >= e {
                    break;
                }
                overlap += c.1.min(e) - c.0.max(s);
            }
            (i, (overlap / (e - s)).clamp(0.0, 1.0))
        })
        .collect()
}

impl<'a> Builder<'a> {
    /// Wires `items` (siblings, in recorded order) to each other and to
    /// `before` (the node they all follow) and returns their exits.
    fn wire(&mut self, items: &[Item], before: usize) -> Vec<usize> {
        // Serial steps so far, in recorded order: (exit, recorded end).
        let mut serials: Vec<(usize, f64)> = Vec::new();
        // Items that no serial step has waited for yet.
        let mut pending: Vec<(usize, f64)> = Vec::new();
        let mut last_of_target: HashMap<&str, usize> = HashMap::new();
        for it in items {
            let had_ended = |end: f64| end <= it.start + SAME_INSTANT;
            let last_serial = serials
                .iter()
                .rev()
                .find(|s| had_ended(s.1))
                .map_or(before, |s| s.0);
            let mut deps = vec![last_serial];
            if it.serial || it.collects {
                deps.extend(pending.iter().filter(|p| had_ended(p.1)).map(|p| p.0));
            }
            if !it.target.is_empty() {
                if let Some(&p) = last_of_target.get(it.target.as_str()) {
                    deps.push(p);
                }
            }
            deps.sort_unstable();
            deps.dedup();
            self.g.deps[it.entry].extend(deps);
            if it.serial {
                serials.push((it.exit, it.end));
                pending.retain(|p| !had_ended(p.1));
            } else {
                pending.push((it.exit, it.end));
            }
            last_of_target.insert(it.target.as_str(), it.exit);
        }
        items.iter().map(|i| i.exit).collect()
    }

    /// The item for job `i`: a leaf, or a recursive make around its
    /// children.
    fn item(&mut self, i: usize) -> Item {
        let job = &self.jobs[i];
        let kids = self
            .children
            .get(&Some(job.id.as_str()))
            .cloned()
            .unwrap_or_default();
        if kids.is_empty() {
            let kind = classify(job);
            *self.g.kinds.entry(kind_name(kind)).or_default() += 1;
            let n = self.g.node(job.secs(), job.start);
            self.g.beside[n] = Some(self.beside.get(&i).copied().unwrap_or(0.0));
            return Item {
                entry: n,
                exit: n,
                serial: matches!(kind, JobKind::Link | JobKind::Generator),
                collects: kind == JobKind::Archive,
                target: job.target.clone(),
                start: job.start,
                end: job.end,
            };
        }
        let spans: Vec<(f64, f64)> = kids
            .iter()
            .map(|&k| (self.jobs[k].start, self.jobs[k].end))
            .collect();
        let first = spans.iter().map(|s| s.0).fold(f64::INFINITY, f64::min);
        let own = (job.secs() - union_len(spans)).max(0.0);
        let pre_secs = (first - job.start).clamp(0.0, own);
        let pre = self.g.node(pre_secs, job.start);
        let post = self.g.node(own - pre_secs, job.end);
        let (exits, serial) = self.siblings(&kids, pre);
        self.g.deps[post].extend(exits);
        *self.g.kinds.entry("make").or_default() += 1;
        Item {
            entry: pre,
            exit: post,
            serial,
            collects: false,
            target: job.target.clone(),
            start: job.start,
            end: job.end,
        }
    }

    /// Builds and wires a list of sibling jobs after `before`; returns
    /// their exits and whether any of them is serial.
    fn siblings(&mut self, ids: &[usize], before: usize) -> (Vec<usize>, bool) {
        let mut sorted = ids.to_vec();
        sorted.sort_by(|&a, &b| {
            self.jobs[a]
                .start
                .partial_cmp(&self.jobs[b].start)
                .unwrap_or(Ordering::Equal)
        });
        let items: Vec<Item> = sorted.iter().map(|&i| self.item(i)).collect();
        let serial = items.iter().any(|i| i.serial);
        (self.wire(&items, before), serial)
    }
}

fn kind_name(k: JobKind) -> &'static str {
    match k {
        JobKind::Compile => "compile",
        JobKind::Archive => "archive",
        JobKind::Link => "link",
        JobKind::Generator => "generator",
        JobKind::Trivial => "trivial",
    }
}

/// The graph of a record. make's own time at the top (between and around
/// the top-level jobs) is a serial node before them and one after.
pub fn graph(rec: &Record) -> Graph {
    let ids: HashMap<&str, usize> = rec
        .jobs
        .iter()
        .enumerate()
        .map(|(i, j)| (j.id.as_str(), i))
        .collect();
    let mut children: HashMap<Option<&str>, Vec<usize>> = HashMap::new();
    for (i, j) in rec.jobs.iter().enumerate() {
        // A parent that was not recorded (a killed run) counts as the top.
        let p = j.parent.as_deref().filter(|p| ids.contains_key(p));
        children.entry(p).or_default().push(i);
    }
    let top = children.get(&None).cloned().unwrap_or_default();
    let leaves: Vec<usize> = (0..rec.jobs.len())
        .filter(|&i| !children.contains_key(&Some(rec.jobs[i].id.as_str())))
        .collect();
    let beside = share_beside(&rec.jobs, &leaves);
    let mut b = Builder {
        jobs: &rec.jobs,
        children,
        beside,
        g: Graph::default(),
    };
    let top_spans: Vec<(f64, f64)> = top
        .iter()
        .map(|&k| (rec.jobs[k].start, rec.jobs[k].end))
        .collect();
    let own = (rec.wall() - union_len(top_spans)).max(0.0);
    let first = rec.sessions.first().map_or(0.0, |s| s.start);
    let pre = b.g.node(own, first);
    let (exits, _) = b.siblings(&top, pre);
    let post = b.g.node(0.0, f64::INFINITY);
    b.g.deps[post].extend(exits);
    b.g
}

#[derive(PartialEq)]
struct Ready(f64, usize);
impl Eq for Ready {}
impl PartialOrd for Ready {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Ready {
    // Min-heap on (recorded start, index).
    fn cmp(&self, o: &Self) -> Ordering {
        o.0.partial_cmp(&self.0)
            .unwrap_or(Ordering::Equal)
            .then(o.1.cmp(&self.1))
    }
}

#[derive(PartialEq)]
struct Done(f64, usize);
impl Eq for Done {}
impl PartialOrd for Done {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Done {
    fn cmp(&self, o: &Self) -> Ordering {
        o.0.partial_cmp(&self.0)
            .unwrap_or(Ordering::Equal)
            .then(o.1.cmp(&self.1))
    }
}

/// The makespan of the graph on `workers` workers, jobs as fast side by side
/// as alone.
pub fn makespan(g: &Graph, workers: usize) -> f64 {
    makespan_with(g, workers, Contention::NONE)
}

/// The makespan of the graph on `workers` workers: list scheduling, ready
/// nodes in recorded order. A job takes its time alone when it starts with
/// no other job running, and `c` times that otherwise (workers are cores of
/// machines that run one job per core; a farm keeps them all busy).
pub fn makespan_with(g: &Graph, workers: usize, c: Contention) -> f64 {
    let n = g.secs.len();
    let alone = |i: usize| match g.beside[i] {
        Some(share) => g.secs[i] / (1.0 + (c.factor - 1.0) * share),
        None => g.secs[i],
    };
    let workers = workers.max(1);
    let mut waiting: Vec<usize> = g.deps.iter().map(|d| d.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ds) in g.deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
        }
    }
    let mut ready: BinaryHeap<Ready> = (0..n)
        .filter(|&i| waiting[i] == 0)
        .map(|i| Ready(g.order[i], i))
        .collect();
    let mut running: BinaryHeap<Done> = BinaryHeap::new();
    let mut now = 0.0f64;
    let mut finished = 0;
    let mut starting = Vec::new();
    while finished < n {
        while running.len() + starting.len() < workers {
            let Some(Ready(_, i)) = ready.pop() else {
                break;
            };
            starting.push(i);
        }
        let side_by_side = running.len() + starting.len() >= 2;
        for i in starting.drain(..) {
            let secs = match g.beside[i] {
                Some(_) if side_by_side => alone(i) * c.factor,
                _ => alone(i),
            };
            running.push(Done(now + secs, i));
        }
        let Some(Done(t, i)) = running.pop() else {
            // Nothing runs and nothing is ready: a cycle, which the
            // builder never makes.
            break;
        };
        now = t;
        finished += 1;
        for &d in &dependents[i] {
            waiting[d] -= 1;
            if waiting[d] == 0 {
                ready.push(Ready(g.order[d], d));
            }
        }
    }
    now
}

#[cfg(test)]
mod tests {
    use super::*;
    use nodeos_build::jobrec::Session;

    fn job(id: &str, parent: Option<&str>, start: f64, end: f64, target: &str, cmd: &str) -> Job {
        Job {
            id: id.into(),
            parent: parent.map(String::from),
            start,
            end,
            status: 0,
            target: target.into(),
            len: cmd.len(),
            head: cmd.into(),
            tail: String::new(),
        }
    }

    fn record(jobs: Vec<Job>, start: f64, end: f64) -> Record {
        Record {
            sessions: vec![Session {
                start,
                end: Some(end),
                jobs: 1,
            }],
            jobs,
            unreadable: 0,
        }
    }

    #[test]
    fn commands_are_classified() {
        let k = |cmd: &str, secs: f64| classify(&job("a", None, 0.0, secs, "", cmd));
        assert_eq!(k("gcc -O2 -c -o a.o a.c", 1.0), JobKind::Compile);
        assert_eq!(
            k(
                "set -e; echo '  CC init/main.o'; gcc -Wp,-MMD -c -o init/main.o init/main.c",
                1.0
            ),
            JobKind::Compile
        );
        // A kbuild compile whose compiler is past the recorded head.
        let cut = Job {
            head: "set -e;  echo '  CC      kernel/events/core.o';    trap 'rm -f kernel/events/core.o; trap - HUP; kill -s HUP $$' HUP;  trap 'rm -f kernel/events/core.o; trap - INT; kill".into(),
            tail: "-o kernel/events/core.o kernel/events/core.c".into(),
            ..job("b", None, 0.0, 4.0, "kernel/events/core.o", "")
        };
        assert_eq!(classify(&cut), JobKind::Compile);
        assert_eq!(
            k("/tc/bin/x86_64-linux-musl-g++ -o out/node a.o b.a", 9.0),
            JobKind::Link
        );
        assert_eq!(k("rm -f x.a && ar crsT x.a a.o", 0.1), JobKind::Archive);
        assert_eq!(
            k(
                "printf 'init/%s ' main.o | xargs ar cDPrST init/built-in.a",
                0.1
            ),
            JobKind::Archive
        );
        assert_eq!(k("ld -m elf_x86_64 -r -o a.o b.o", 0.1), JobKind::Archive);
        assert_eq!(
            k("out/Release/mksnapshot --startup_src x.cc", 60.0),
            JobKind::Generator
        );
        assert_eq!(k("mkdir -p out/obj", 0.01), JobKind::Trivial);
        // gyp: a compile through a launcher, and the printf of its command
        // line into a depfile, which runs no compiler.
        assert_eq!(
            k(
                "/usr/bin/ccache /tc/bin/x86_64-linux-musl-gcc -o x.o ../x.c '-DA=1' -c",
                1.0
            ),
            JobKind::Compile
        );
        assert_eq!(
            k(
                "printf '%s\\n' 'cmd_x.o := ccache gcc -o x.o x.c -c' > x.d",
                0.001
            ),
            JobKind::Trivial
        );
        // A long line cut in its middle: the tail's words are the head's last
        // command's arguments, wherever the cut fell.
        let long = |head: &str, tail: &str| Job {
            head: head.into(),
            tail: tail.into(),
            ..job("c", None, 0.0, 0.001, "x.o", "")
        };
        assert_eq!(
            classify(&long("ccache g++ -o x.o x.cc '-DA", "-DB' -O2 -c")),
            JobKind::Compile
        );
        assert_eq!(
            classify(&long(
                "printf '%s\\n' 'cmd_x.o := ccache g++ -o x.o",
                "-O2 -c' > x.d"
            )),
            JobKind::Trivial
        );
    }

    #[test]
    fn a_shell_line_reads_as_its_simple_commands() {
        let c =
            commands("A=1 exec gcc -c 'a b.c' && printf '%s;%s' x y | xargs -0 ar rc l.a; (cd d)");
        assert_eq!(
            c,
            vec![
                vec!["gcc", "-c", "a b.c"],
                vec!["printf", "%s;%s", "x", "y"],
                vec!["xargs", "-0", "ar", "rc", "l.a"],
                vec!["cd", "d"],
            ]
        );
        assert_eq!(programs("echo \\' gcc -c; ls"), vec!["echo", "ls"]);
    }

    #[test]
    fn independent_compiles_spread_and_serial_steps_do_not() {
        // Four 1 s compiles, then a 2 s link, then two 1 s compiles, all
        // recorded one after another (a -j1 build).
        let mut jobs = Vec::new();
        for i in 0..4 {
            let s = i as f64;
            jobs.push(job(
                &format!("c{i}"),
                None,
                s,
                s + 1.0,
                &format!("{i}.o"),
                "cc -c -o x.o x.c",
            ));
        }
        jobs.push(job("l", None, 4.0, 6.0, "prog", "cc -o prog 0.o 1.o"));
        jobs.push(job("d0", None, 6.0, 7.0, "5.o", "cc -c -o 5.o 5.c"));
        jobs.push(job("d1", None, 7.0, 8.0, "6.o", "cc -c -o 6.o 6.c"));
        let g = graph(&record(jobs, 0.0, 8.0));
        assert!((makespan(&g, 1) - 8.0).abs() < 1e-9);
        assert!((makespan(&g, 2) - 5.0).abs() < 1e-9, "{}", makespan(&g, 2));
        assert!((makespan(&g, 64) - 4.0).abs() < 1e-9);
    }

    #[test]
    fn jobs_that_ran_beside_a_serial_step_did_not_wait_for_it() {
        // A -j2 build: two compiles, then a 2 s link with two compiles
        // beside it, then a second link.
        let jobs = vec![
            job("c0", None, 0.0, 1.0, "0.o", "cc -c -o 0.o 0.c"),
            job("c1", None, 0.0, 1.0, "1.o", "cc -c -o 1.o 1.c"),
            job("l", None, 1.0, 3.0, "prog", "cc -o prog 0.o 1.o"),
            job("c2", None, 1.0, 2.0, "2.o", "cc -c -o 2.o 2.c"),
            job("c3", None, 2.0, 3.0, "3.o", "cc -c -o 3.o 3.c"),
            job("l2", None, 3.0, 4.0, "prog2", "cc -o prog2 2.o 3.o"),
        ];
        let g = graph(&record(jobs, 0.0, 4.0));
        // Replayed on the workers it was recorded with: its own wall time
        // (the rules alone would hold c2 and c3 behind the link: 5 s).
        assert!((makespan(&g, 2) - 4.0).abs() < 1e-9, "{}", makespan(&g, 2));
        assert!((makespan(&g, 1) - 7.0).abs() < 1e-9);
        // The second link still waits for everything before it: with
        // workers to spare, c2 and c3 run at once but l2 follows both.
        assert!((makespan(&g, 8) - 4.0).abs() < 1e-9, "{}", makespan(&g, 8));
        let (c2, c3, l2) = (3, 4, 5);
        let waits = |n: usize, on: usize| g.deps[n + 1].contains(&(on + 1));
        assert!(waits(l2, c2) && waits(l2, c3) && waits(l2, 2));
        assert!(!waits(c2, 2) && !waits(c3, 2), "{:?}", g.deps);
    }

    #[test]
    fn a_recursive_make_runs_its_own_time_around_its_children() {
        // make's parse (1 s) before two 2 s compiles, 1 s after; beside it
        // at the top, a 4 s compile. 1 s of top-level make time first.
        let jobs = vec![
            job("m", None, 1.0, 7.0, "sub", "make -f sub.mk"),
            job("a", Some("m"), 2.0, 4.0, "a.o", "cc -c -o a.o a.c"),
            job("b", Some("m"), 4.0, 6.0, "b.o", "cc -c -o b.o b.c"),
            job("c", None, 7.0, 11.0, "c.o", "cc -c -o c.o c.c"),
        ];
        let g = graph(&record(jobs, 0.0, 11.0));
        assert!((makespan(&g, 1) - 11.0).abs() < 1e-9);
        // Two workers: top make (1), then c (4) on one worker beside the
        // sub-make on the other (1 + 2 + 2 + 1: a and b cannot overlap
        // while c holds the second worker): 7 s, the optimum (running a
        // and b at once leaves c only the sub-make's 2 s of own time).
        assert!((makespan(&g, 2) - 7.0).abs() < 1e-9, "{}", makespan(&g, 2));
        // Three workers: a and b beside c: 1 + 1 + 2 + 1 = 5 s.
        assert!((makespan(&g, 3) - 5.0).abs() < 1e-9, "{}", makespan(&g, 3));
    }

    #[test]
    fn lines_of_one_target_stay_in_order() {
        let jobs = vec![
            job("a1", None, 0.0, 1.0, "a.o", "cc -c -o a.o a.c"),
            job("a2", None, 1.0, 2.0, "a.o", "objtool check a.o"),
        ];
        let g = graph(&record(jobs, 0.0, 2.0));
        assert!((makespan(&g, 8) - 2.0).abs() < 1e-9);
    }

    fn compiles(secs: &[(f64, f64)]) -> Record {
        let jobs = secs
            .iter()
            .enumerate()
            .map(|(i, &(s, e))| {
                job(
                    &format!("c{i}"),
                    None,
                    s,
                    e,
                    &format!("{i}.o"),
                    "cc -c -o x.o x.c",
                )
            })
            .collect();
        let end = secs.iter().map(|s| s.1).fold(0.0, f64::max);
        record(jobs, 0.0, end)
    }

    #[test]
    fn contention_is_measured_on_the_compiles_both_builds_ran() {
        let serial = compiles(&[(0.0, 1.0), (1.0, 2.0), (2.0, 4.0)]);
        // The parallel build ran the first two side by side, 1.5 s each,
        // and the third alone as before.
        let parallel = compiles(&[(0.0, 1.5), (0.0, 1.5), (1.5, 3.5)]);
        let c = contention(&serial, &parallel).unwrap();
        assert_eq!(c.compiles, 3);
        assert!((c.factor - 5.0 / 4.0).abs() < 1e-9, "{c:?}");
        assert!(contention(&serial, &compiles(&[])).is_none());
    }

    #[test]
    fn jobs_side_by_side_take_the_contended_time() {
        let c = Contention {
            factor: 1.5,
            compiles: 4,
        };
        // Recorded one at a time: their time alone.
        let g = graph(&compiles(&[(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.0)]));
        assert!((makespan_with(&g, 1, c) - 4.0).abs() < 1e-9);
        assert!((makespan_with(&g, 2, c) - 3.0).abs() < 1e-9);
        assert!((makespan(&g, 2) - 2.0).abs() < 1e-9);
        // Recorded two at a time, slowed: alone again on one worker.
        let g = graph(&compiles(&[(0.0, 1.5), (0.0, 1.5), (1.5, 3.0), (1.5, 3.0)]));
        assert!(
            (makespan_with(&g, 1, c) - 4.0).abs() < 1e-9,
            "{}",
            makespan_with(&g, 1, c)
        );
        assert!((makespan_with(&g, 2, c) - 3.0).abs() < 1e-9);
        // A job that starts alone runs at its own speed even with workers
        // to spare.
        let g = graph(&compiles(&[(0.0, 2.0)]));
        assert!((makespan_with(&g, 8, c) - 2.0).abs() < 1e-9);
    }
}
