// The node-test runner. Inside the guest it is node's entry script: the
// kernel command line ends with `-- /node-test/runner.js`, so PID 1 runs
// `node /node-test/runner.js`. It reads plan.json beside it (or the path
// given as its first argument), runs every planned test file as a child
// process the way Node's tools/test.py does (the file's `// Flags:` line,
// the TEST_* environment, a timeout, several at a time) and prints one line
// per event on stdout, which is the serial console:
//
//   @@NODETEST {"ev":"hello", ...facts about this node and guest...}
//   @@NODETEST {"ev":"start","id":7}
//   @@NODETEST {"ev":"result","id":7,"outcome":"fail","ms":812,...,"tail":[...]}
//   @@NODETEST {"ev":"done","ms":93000,"results":412}
//
// The JSON is ASCII only (other characters escaped) and never spans lines,
// so the host can cut it out of a console that also carries kernel lines.
// The host's parser (qemu-tests/src/node_suite/protocol.rs) reads exactly
// these fields; PROTOCOL changes when they change.
//
// It mounts nothing and creates no device nodes: a test that needs /proc,
// /dev/null or /tmp fails here unless the node it runs on provides them.
// The POSIX tools (/bin/sh, env, cat...) are there when the host packed
// them (qemu-tests/src/node_suite/tools.rs); the kernel gives PID 1 no
// PATH, so the tests get GUEST_PATH.
'use strict';

const fs = require('fs');
const path = require('path');
const net = require('net');
const dns = require('dns');
const { spawn } = require('child_process');

const PROTOCOL = 2;
const PREFIX = '@@NODETEST ';
// What tools/test.py reads from a test file (the first match counts).
const FLAGS_RE = /\/\/\s+Flags:(.*)/;
// How a test says it skipped itself: common.skip() prints `1..0 # Skipped:
// why` on a line of its own and exits 0. tools/test.py looks for `# SKIP…`
// anywhere in stdout, which also matches the `# skipped 0` summary of
// node:test files that ran; only common.skip's line counts here.
const SKIP_RE = /^1\.\.0 # Skipped:?\s*(.*)$/m;
// Output read back per stream and child; only the tail is ever reported.
const KEEP_BYTES = 64 * 1024;
// Between SIGTERM (what test.py sends on timeout) and SIGKILL.
const KILL_GRACE_MS = 5000;
// Where the test tools are; as tools.rs's GUEST_PATH.
const GUEST_PATH = '/usr/bin:/bin';
// Decided once: PID 1 mounts /dev before the runner starts.
const HAS_DEV_NULL = fs.existsSync('/dev/null');

function emit(event) {
  const json = JSON.stringify(event).replace(
    /[\u007f-\uffff]/g,
    (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
  process.stdout.write(PREFIX + json + '\n');
}

function loadPlan() {
  const file = process.argv[2] || path.join(__dirname, 'plan.json');
  const plan = JSON.parse(fs.readFileSync(file, 'utf8'));
  if (plan.protocol !== PROTOCOL) {
    throw new Error(`${file} is for protocol ${plan.protocol}, this runner speaks ${PROTOCOL}`);
  }
  // Test paths are relative to the plan's root (default: beside the plan),
  // which is also every child's working directory, as the source tree is
  // for tools/test.py.
  plan.root = path.resolve(path.dirname(file), plan.root || '.');
  return plan;
}

// Facts the host's known-failures conditions may use ($proc, $devnull...).
function loopbackWorks() {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), 5000);
    const done = (ok) => { clearTimeout(timer); resolve(ok); };
    const server = net.createServer((socket) => socket.end());
    server.on('error', () => done(false));
    server.listen(0, '127.0.0.1', () => {
      const client = net.connect(server.address().port, '127.0.0.1');
      client.on('connect', () => { client.destroy(); server.close(); done(true); });
      client.on('error', () => { server.close(); done(false); });
    });
  });
}

function localhostResolves() {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), 5000);
    dns.lookup('localhost', (err) => { clearTimeout(timer); resolve(!err); });
  });
}

function icuKind() {
  if (typeof Intl !== 'object') return 'none';
  try {
    // Only full ICU data carries Spanish month names.
    const month = new Intl.DateTimeFormat('es', { month: 'long', timeZone: 'UTC' })
      .format(new Date(Date.UTC(2000, 0, 15)));
    return month === 'enero' ? 'full' : 'small';
  } catch {
    return 'small';
  }
}

async function facts(plan) {
  return {
    ev: 'hello',
    protocol: PROTOCOL,
    version: process.version,
    arch: process.arch,
    pid: process.pid,
    exec_path: process.execPath,
    proc: fs.existsSync('/proc/self/stat'),
    devnull: fs.existsSync('/dev/null'),
    tmp: fs.existsSync('/tmp'),
    sh: fs.existsSync('/bin/sh'),
    loopback: await loopbackWorks(),
    localhost: await localhostResolves(),
    icu: icuKind(),
    inspector: Boolean(process.features.inspector),
    crypto: Boolean(process.versions.openssl),
    jobs: plan.jobs,
    tests: plan.tests.length,
  };
}

// The command line tools/test.py builds: node, the file's `// Flags:`, the
// file. Like test.py, inspector flags are dropped (not the test) on a node
// without the inspector, and TLS/CA flags on a node without crypto.
function commandFor(file, source) {
  const match = FLAGS_RE.exec(source);
  let flags = match ? match[1].trim().split(/\s+/).filter(Boolean) : [];
  const cryptoFlags = ['--use-bundled-ca', '--use-openssl-ca', '--tls-v1.0', '--tls-v1.1'];
  if (flags.some((f) => f.startsWith('--inspect')) && !process.features.inspector) {
    flags = [];
  } else if (flags.some((f) => cryptoFlags.includes(f)) && !process.versions.openssl) {
    flags = [];
  }
  return { flags, args: [...flags, file] };
}

// The newest KEEP_BYTES of an output file (removed after reading).
class Tail {
  constructor(file) {
    this.bytes = 0;
    this.data = Buffer.alloc(0);
    let fd;
    try {
      fd = fs.openSync(file, 'r');
      this.bytes = fs.fstatSync(fd).size;
      const n = Math.min(this.bytes, KEEP_BYTES);
      this.data = Buffer.alloc(n);
      fs.readSync(fd, this.data, 0, n, this.bytes - n);
    } catch {
      // Never created (the spawn failed): no output.
    } finally {
      if (fd !== undefined) fs.closeSync(fd);
      try { fs.unlinkSync(file); } catch { /* not there */ }
    }
  }
  lines(count, maxBytes) {
    let text = this.data.toString('utf8');
    if (text.length > maxBytes) text = text.slice(text.length - maxBytes);
    const lines = text.split('\n').map((l) => l.replace(/\r$/, ''));
    while (lines.length && lines[lines.length - 1] === '') lines.pop();
    return lines.slice(-count);
  }
}

function runOne(plan, test, slot, serial) {
  return new Promise((resolve) => {
    const started = Date.now();
    const file = path.join(plan.root, test.file);
    let source;
    try {
      source = fs.readFileSync(file, 'utf8');
    } catch (err) {
      resolve({ outcome: 'fail', ms: 0, exit: null, signal: null, flags: [],
                tail: [`runner: cannot read ${file}: ${err.message}`] });
      return;
    }
    const { flags, args } = commandFor(file, source);
    const env = { ...process.env, PATH: GUEST_PATH };
    delete env.NODE_PATH;
    delete env.NODE_REPL_EXTERNAL_MODULE;
    env.NODE_OPTIONS = '';
    env.TEST_SERIAL_ID = String(serial);
    env.TEST_THREAD_ID = String(slot);
    env.TEST_PARALLEL = test.parallel ? '1' : '0';

    const outFile = path.join(plan.outDir, `${serial}.out`);
    const errFile = path.join(plan.outDir, `${serial}.err`);
    let timedOut = false;
    let spawnError = null;
    let child;
    const fds = [];
    try {
      // As under tools/test.py: stdout and stderr go to files and stdin is
      // /dev/null (a guest without it gets a pipe closed at once), never
      // pipes, which are active handles some tests count and which a
      // grandchild could hold open. detached: its own process group, so a
      // timeout kills the test's children too.
      fds.push(fs.openSync(outFile, 'w'), fs.openSync(errFile, 'w'));
      child = spawn(process.execPath, args, {
        cwd: plan.root, env, detached: true,
        stdio: [HAS_DEV_NULL ? 'ignore' : 'pipe', fds[0], fds[1]],
      });
    } catch (err) {
      spawnError = err;
    }
    for (const fd of fds) fs.closeSync(fd);
    const finish = (exit, signal) => {
      const stdout = new Tail(outFile);
      const stderr = new Tail(errFile);
      const ms = Date.now() - started;
      let outcome;
      if (spawnError) outcome = 'fail';
      else if (timedOut) outcome = 'timeout';
      else if (signal) outcome = 'crash';
      else if (exit !== 0) outcome = 'fail';
      else outcome = 'pass';
      const skipped = outcome === 'pass' && SKIP_RE.exec(stdout.lines(50, 8192).join('\n'));
      if (skipped) outcome = 'skip';
      const result = { outcome, ms, exit, signal, flags };
      if (skipped) {
        result.tail = [skipped[1].slice(0, 200)];
      } else if (outcome !== 'pass') {
        const source = stderr.bytes > 0 ? stderr : stdout;
        result.tail = source.lines(plan.tail_lines, plan.tail_bytes);
        if (spawnError) result.tail.push(`runner: spawn failed: ${spawnError.message}`);
      }
      resolve(result);
    };
    if (spawnError) { finish(null, null); return; }
    if (child.stdin) {
      child.stdin.on('error', () => {});
      child.stdin.end();
    }
    const killGroup = (signal) => {
      try { process.kill(-child.pid, signal); } catch { /* already gone */ }
    };
    let killTimer = null;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup('SIGTERM');
      killTimer = setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS);
    }, plan.timeout_ms);
    let settled = false;
    child.on('error', (err) => {
      // spawn failures arrive here (ENOENT, EAGAIN); 'exit' may not follow.
      if (settled) return;
      settled = true;
      spawnError = err;
      clearTimeout(timer);
      finish(null, null);
    });
    child.on('exit', (code, signal) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      // Whatever the test left running in its group goes with it.
      killGroup('SIGKILL');
      finish(code, signal);
    });
  });
}

async function runAll(plan) {
  let serial = 0;
  plan.outDir = path.join(plan.root, '.runner-out');
  fs.mkdirSync(plan.outDir, { recursive: true });
  const runTest = async (test, slot) => {
    emit({ ev: 'start', id: test.id });
    const result = await runOne(plan, test, slot, serial++);
    emit({ ev: 'result', id: test.id, ...result });
  };
  // As tools/test.py: parallel tests share the job slots; the others run
  // afterwards, one at a time.
  const parallel = plan.tests.filter((t) => t.parallel);
  const serialTests = plan.tests.filter((t) => !t.parallel);
  let next = 0;
  const worker = async (slot) => {
    while (next < parallel.length) {
      const test = parallel[next++];
      await runTest(test, slot);
    }
  };
  const slots = Math.max(1, Math.min(plan.jobs, parallel.length));
  await Promise.all(Array.from({ length: slots }, (_, slot) => worker(slot)));
  for (const test of serialTests) await runTest(test, 0);
}

async function main() {
  const started = Date.now();
  let plan;
  try {
    plan = loadPlan();
    emit(await facts(plan));
    await runAll(plan);
  } catch (err) {
    emit({ ev: 'error', message: String(err && err.stack || err) });
    process.exitCode = 2;
    return;
  }
  emit({ ev: 'done', ms: Date.now() - started, results: plan.tests.length });
}

main();
