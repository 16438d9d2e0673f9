//! Checks of node's duties as PID 1 (patches/node-*/0001-nodeos-init.patch):
//! the root it runs from; what needs /proc, /sys, /dev and /tmp mounted;
//! the host name and `localhost`; node's own children keeping their exit
//! statuses while orphans are reaped; TLS with Node's bundled CA store and with
//! `NODE_EXTRA_CA_CERTS`.
//!
//! Values that only a NodeOS guest can give (its mounts, `node:nodeos`, the
//! orphan's new parent being PID 1, a node built without a system CA store)
//! are keyed in [`GUEST_ONLY_KEYS`]; the host tests run the rest against the
//! host's node.

use std::path::Path;
use std::process::Command;

use super::{Expected, NodeExpectations, Probe, js_string, marker_js};

/// Probes whose expected values hold only in a NodeOS guest.
pub const GUEST_ONLY_KEYS: &[&str] = &[
    "rootfs",
    "mounts",
    "devlinks",
    "users",
    "nodeos",
    "castore",
    "orphans",
    "bindingpid1",
];

/// statfs(2)'s f_type of a ramfs (linux/magic.h), in hex.
const RAMFS_MAGIC: &str = "858458f6";

/// Node's bundled root store holds about 140 certificates (Mozilla's list);
/// "well above 100", and a bound that a system store would not fit.
const ROOT_CERTS_MIN: u64 = 100;
const ROOT_CERTS_MAX: u64 = 400;

/// How long the orphan check waits for the grandchild to run, then how long
/// after the grandchild's exit a zombie may remain.
const ORPHAN_WAIT_MS: u32 = 30_000;
const ZOMBIE_GRACE_MS: u32 = 1_000;

pub(super) fn probes(exp: &NodeExpectations) -> Vec<Probe> {
    let dir = &exp.scratch_dir;
    let mut probes = vec![
        Probe::new(
            "os.cpus() = -smp",
            "cpus",
            "require('os').cpus().length",
            Expected::Equals(exp.cpus.to_string()),
        ),
        Probe::new(
            "process.memoryUsage()",
            "memusage",
            "(m=>m.rss>0&&m.heapUsed>0)(process.memoryUsage())",
            Expected::Equals("true".into()),
        ),
        Probe::new(
            "os.loadavg()",
            "loadavg",
            "(a=>a.length===3&&a.every(Number.isFinite))(require('os').loadavg())",
            Expected::Equals("true".into()),
        ),
        Probe::new(
            "readdir /proc/self/fd",
            "fds",
            "['0','1','2'].every(f=>require('fs').readdirSync('/proc/self/fd').includes(f))",
            Expected::Equals("true".into()),
        ),
        // The kernel's built-in `rootfstype=ramfs` (kernel/config/common.config):
        // a tmpfs root would cap the unpacked initramfs at half the RAM.
        Probe::new(
            "root is a ramfs",
            "rootfs",
            "require('fs').statfsSync('/').type.toString(16)",
            Expected::Equals(RAMFS_MAGIC.into()),
        ),
        Probe::new(
            "mounts",
            "mounts",
            "(()=>{const t={};for(const l of require('fs').readFileSync('/proc/self/mounts','utf8').split('\\n')){const f=l.split(' ');if(f[1])t[f[1]]=f[2]}return ['/proc','/sys','/dev','/tmp'].map(p=>t[p]).join()})()",
            Expected::Equals("proc,sysfs,devtmpfs,tmpfs".into()),
        ),
        Probe::new(
            "/dev/fd and /dev/std* links",
            "devlinks",
            "['fd','stdin','stdout','stderr'].map(n=>require('fs').readlinkSync('/dev/'+n)).join()",
            Expected::Equals(
                "/proc/self/fd,/proc/self/fd/0,/proc/self/fd/1,/proc/self/fd/2".into(),
            ),
        ),
        Probe::new(
            "os.userInfo() from /etc/passwd",
            "users",
            "(u=>[u.username,u.uid,u.gid,u.homedir].join())(require('os').userInfo())",
            Expected::Equals("root,0,0,/root".into()),
        ),
        Probe::new(
            "os.hostname()",
            "hostname",
            "require('os').hostname()",
            Expected::Equals(exp.hostname.clone()),
        ),
        async_probe(
            "dns.lookup('localhost')",
            "dns",
            |m| {
                format!(
                    "require('dns').lookup('localhost',{{family:4}},(e,a)=>console.log({m}+(e?e.code:a)))"
                )
            },
            "127.0.0.1",
        ),
        Probe::new(
            "node:nodeos",
            "nodeos",
            // A node without it answers with the error's code (and the run
            // goes on).
            "(()=>{try{const m=require('node:nodeos');return [typeof m.mount,typeof m.umount,typeof m.reboot,typeof m.sethostname,typeof m.sync,typeof m.onShutdown,m.isInit].join()}catch(e){return e.code}})()",
            Expected::Equals("function,function,function,function,function,function,true".into()),
        ),
        // Four children, three of them at once, one through spawnSync:
        // each exit status arrives while PID 1's reaper runs on every
        // SIGCHLD.
        async_probe(
            "children keep their exit statuses",
            "children",
            |m| {
                format!(
                    "(()=>{{const cp=require('child_process'),e=process.execPath,c=[];\
                     const s=cp.spawnSync(e,['-e','process.exit(7)']).status;\
                     for(let i=1;i<=3;i++)c.push(new Promise(r=>cp.spawn(e,['-e','process.exit('+i+')']).on('exit',r)));\
                     Promise.all(c).then(v=>console.log({m}+s+','+v.join()))}})()"
                )
            },
            "7,1,2,3",
        ),
        // PID 1 loads the nodeos binding at start; any other node (a child
        // here) must not, or its module list is not Node's own.
        Probe::new(
            "nodeos binding only in PID 1",
            "bindingpid1",
            "process.moduleLoadList.includes('Internal Binding nodeos')+','+require('child_process').execFileSync(process.execPath,['-p',\"process.moduleLoadList.includes('Internal Binding nodeos')\"]).toString().trim()",
            Expected::Equals("true,false".into()),
        ),
        orphan_probe(dir),
        Probe::new(
            "tls.rootCertificates",
            "rootcerts",
            "require('tls').rootCertificates.length",
            Expected::Range {
                lo: ROOT_CERTS_MIN,
                hi: ROOT_CERTS_MAX,
                unit: "certificates",
            },
        ),
        // Built without --openssl-use-def-ca-store, whose define makes
        // OpenSSL's default (system) store node's default: Debian's build
        // rules pass it, and the image has no system store.
        Probe::new(
            "bundled CA store",
            "castore",
            "(process.config.target_defaults.defines||[]).includes('NODE_OPENSSL_CERT_STORE')",
            Expected::Equals("false".into()),
        ),
    ];
    probes.extend(tls_probes(exp));
    probes
}

/// A probe whose JS prints later; `js` gets the marker's JS expression.
fn async_probe(
    name: &'static str,
    key: &'static str,
    js: impl FnOnce(&str) -> String,
    expected: &str,
) -> Probe {
    Probe {
        name,
        js: js(&marker_js(key)),
        key,
        expected: Expected::Equals(expected.into()),
    }
}

/// A child starts a detached grandchild and exits at once; the grandchild,
/// re-parented to PID 1, notes its pid and parent in a file and exits. A
/// second later the grandchild must be gone (reaped) and no zombie left.
/// Prints `<grandchild's parent>,<grandchild still in /proc>,<zombies>`.
fn orphan_probe(dir: &str) -> Probe {
    let note = js_string(&format!("{dir}/nodeos-orphan"));
    // The grandchild waits so that its parent has surely exited.
    let grandchild = "setTimeout(()=>require('fs').writeFileSync(process.argv[1],process.pid+' '+process.ppid),500)";
    let child = "require('child_process').spawn(process.execPath,['-e',process.argv[1],process.argv[2]],{detached:true,stdio:'ignore'}).unref()";
    async_probe(
        "orphans reaped",
        "orphans",
        |m| {
            format!(
                "(()=>{{const cp=require('child_process'),fs=require('fs'),f={note},t0=Date.now();try{{fs.unlinkSync(f)}}catch{{}}\
                 cp.spawn(process.execPath,['-e',{child},{grandchild},f],{{stdio:'ignore'}});\
                 const zombies=()=>fs.readdirSync('/proc').filter(p=>{{try{{const s=fs.readFileSync('/proc/'+p+'/stat','utf8');return s[s.lastIndexOf(')')+2]==='Z'}}catch{{return false}}}}).length;\
                 const poll=setInterval(()=>{{let n;try{{n=fs.readFileSync(f,'utf8').split(' ')}}catch{{if(Date.now()-t0>{ORPHAN_WAIT_MS}){{clearInterval(poll);console.log({m}+'no grandchild')}}return}}\
                 clearInterval(poll);setTimeout(()=>console.log({m}+n[1]+','+fs.existsSync('/proc/'+n[0])+','+zombies()),{ZOMBIE_GRACE_MS})}},100)}})()",
                child = js_string(child),
                grandchild = js_string(grandchild),
            )
        },
        "1,false,0",
    )
}

/// The test CA and the server certificate it signed, as base64 DER (the
/// bodies of their PEM files), made by the host's `openssl`.
struct TestCa {
    ca_cert: String,
    server_cert: String,
    server_key: String,
}

impl TestCa {
    fn generate() -> Result<TestCa, String> {
        let dir = std::env::temp_dir().join(format!(
            "nodeos-test-ca-{}-{}",
            std::process::id(),
            super::run_token()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let made = Self::generate_in(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        made
    }

    fn generate_in(dir: &Path) -> Result<TestCa, String> {
        let write = |name: &str, text: &str| {
            std::fs::write(dir.join(name), text).map_err(|e| format!("{name}: {e}"))
        };
        // A config of its own: the system's may add extensions that clash
        // with the ones given here.
        write("req.cnf", "[req]\ndistinguished_name=dn\n[dn]\n")?;
        write(
            "server.ext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\n\
             basicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )?;
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            dir,
            &[
                &["req", "-config", "req.cnf", "-x509", "-new"],
                &ec[..],
                &[
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                    "-days",
                    "2",
                    "-subj",
                    "/CN=NodeOS test CA",
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign",
                ],
            ],
        )?;
        openssl(
            dir,
            &[
                &["req", "-config", "req.cnf", "-new"],
                &ec[..],
                &[
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                    "-subj",
                    "/CN=localhost",
                ],
            ],
        )?;
        openssl(
            dir,
            &[&[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-set_serial",
                "2",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.pem",
            ]],
        )?;
        Ok(TestCa {
            ca_cert: pem_body(&dir.join("ca.pem"))?,
            server_cert: pem_body(&dir.join("server.pem"))?,
            server_key: pem_body(&dir.join("server.key"))?,
        })
    }
}

fn openssl(dir: &Path, parts: &[&[&str]]) -> Result<(), String> {
    let args: Vec<&str> = parts.concat();
    let out = Command::new("openssl")
        .args(&args)
        .current_dir(dir)
        .output()
        .map_err(|e| format!("running the host's openssl: {e} (install the openssl package)"))?;
    if !out.status.success() {
        return Err(format!(
            "openssl {} failed: {}",
            args[0],
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// The base64 between a PEM file's BEGIN and END lines.
fn pem_body(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    if body.is_empty() {
        return Err(format!("{}: no PEM body", path.display()));
    }
    Ok(body)
}

/// Two probes: the first writes the test CA's certificate, the server's
/// certificate and key as PEM files into the scratch dir; the second serves
/// HTTPS with them and fetches from a child node that trusts the CA only
/// through `NODE_EXTRA_CA_CERTS`, by the name `localhost`. When the host
/// cannot make the CA (no `openssl`), both fail and say why.
fn tls_probes(exp: &NodeExpectations) -> Vec<Probe> {
    let dir = &exp.scratch_dir;
    let file = |name: &str| js_string(&format!("{dir}/nodeos-tls-{name}.pem"));
    let files = match TestCa::generate() {
        Ok(ca) => async_probe(
            "TLS test files",
            "tlsfiles",
            |m| {
                format!(
                    "(()=>{{const fs=require('fs'),pem=(t,b)=>'-----BEGIN '+t+'-----\\n'+b.match(/.{{1,64}}/g).join('\\n')+'\\n-----END '+t+'-----\\n';\
                     fs.writeFileSync({},pem('CERTIFICATE',{}));fs.writeFileSync({},pem('CERTIFICATE',{}));fs.writeFileSync({},pem('PRIVATE KEY',{}));console.log({m}+'written')}})()",
                    file("ca"),
                    js_string(&ca.ca_cert),
                    file("cert"),
                    js_string(&ca.server_cert),
                    file("key"),
                    js_string(&ca.server_key),
                )
            },
            "written",
        ),
        Err(why) => async_probe(
            "TLS test files",
            "tlsfiles",
            |m| {
                format!(
                    "console.log({m}+{})",
                    js_string(&format!("no test CA: {why}"))
                )
            },
            "written",
        ),
    };
    let fetch = "require('https').get('https://localhost:'+process.argv[1]+'/',r=>{let b='';r.on('data',d=>b+=d);r.on('end',()=>console.log(r.statusCode+','+b))}).on('error',e=>console.log('error '+(e.code||e.message)))";
    let https = async_probe(
        "https with NODE_EXTRA_CA_CERTS",
        "https",
        |m| {
            format!(
                "(()=>{{const fs=require('fs'),cp=require('child_process');\
                 const s=require('https').createServer({{key:fs.readFileSync({key}),cert:fs.readFileSync({cert})}},(q,r)=>r.end({token}));\
                 s.listen(0,()=>{{const c=cp.spawn(process.execPath,['-e',{fetch},String(s.address().port)],{{env:{{...process.env,NODE_EXTRA_CA_CERTS:{ca}}},stdio:['ignore','pipe','inherit']}});\
                 let o='';c.stdout.on('data',d=>o+=d);c.on('exit',()=>{{s.close();console.log({m}+o.trim())}})}})}})()",
                key = file("key"),
                cert = file("cert"),
                ca = file("ca"),
                token = js_string(&exp.token),
                fetch = js_string(fetch),
            )
        },
        &format!("200,{}", exp.token),
    );
    vec![files, https]
}
