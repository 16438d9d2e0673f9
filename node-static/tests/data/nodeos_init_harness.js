'use strict';
// Runs the JavaScript of the NodeOS init patch (lib/internal/nodeos/*.js,
// extracted from patches/node-*/0001-nodeos-init.patch) on the host's node,
// against a recording stand-in for the `nodeos` binding and an in-memory
// file system; prints what happened as one JSON line.
//
// node --expose-internals nodeos_init_harness.js LIBDIR SCENARIO_JSON
//
// Scenario: { "call": "config", "cmdline": "...", "pnp": "..." }, or
// { "call": "start", "cmdline": "...", "files": {path: text},
//   "fail": {"mount /sys": -16}, "signal": "SIGTERM",
//   "hooks": ["ok", "throw", "hang"], "appListens": false }

const { primordials } = require('internal/test/binding');
const errors = require('internal/errors');
const fs = require('fs');
const path = require('path');

const [libDir, scenarioJson] = process.argv.slice(2);
const scenario = JSON.parse(scenarioJson);

// Linux's values, so the recorded calls read as the real ones would.
const constants = {
  MS_NOSUID: 2, MS_NODEV: 4, MS_NOEXEC: 8,
  RB_AUTOBOOT: 0x01234567, RB_HALT_SYSTEM: 0xcdef0123 | 0,
  RB_POWER_OFF: 0x4321fedc, RB_ENABLE_CAD: 0x89abcdef | 0, RB_DISABLE_CAD: 0,
};

const calls = [];
const said = [];
const files = new Map(Object.entries(scenario.files || {}));
const mounted = new Set();
const fail = scenario.fail || {};

function enoent(p) {
  const e = new Error(`ENOENT: no such file or directory, open '${p}'`);
  e.code = 'ENOENT';
  return e;
}
function mountsText() {
  return [...mounted].map((t) => `x ${t} x rw 0 0`).join('\n') + '\n';
}
const fakeFs = {
  existsSync: (p) => (p === '/proc/self' ? mounted.has('/proc') : files.has(p)),
  mkdirSync: (p, mode) => {
    calls.push(['mkdir', p, mode]);
    if (files.has(p)) {
      const e = new Error(`EEXIST: file already exists, mkdir '${p}'`);
      e.code = 'EEXIST';
      throw e;
    }
    files.set(p, null);
  },
  readFileSync: (p) => {
    if (p === '/proc/self/mounts' && mounted.has('/proc')) return mountsText();
    if (p.startsWith('/proc/') && !mounted.has('/proc')) throw enoent(p);
    if (!files.has(p) || files.get(p) === null) throw enoent(p);
    return files.get(p);
  },
  symlinkSync: (target, p) => {
    if (files.has(p)) {
      const e = new Error(`EEXIST: file already exists, symlink '${target}' -> '${p}'`);
      e.code = 'EEXIST';
      throw e;
    }
    calls.push(['symlink', p, target]);
    files.set(p, target);
  },
  writeFileSync: (p, text, options) => {
    if (options.flag === 'wx' && files.has(p)) {
      const e = new Error(`EEXIST: file already exists, open '${p}'`);
      e.code = 'EEXIST';
      throw e;
    }
    calls.push(['write', p, text]);
    files.set(p, text);
  },
};

function record(name, args, what) {
  calls.push([name, ...args]);
  return fail[what] ?? 0;
}
const binding = {
  constants,
  mount: (src, target, type, flags, data) => {
    const rc = record('mount', [src, target, type, flags, data ?? null], `mount ${target}`);
    if (rc === 0) mounted.add(target);
    return rc;
  },
  umount: (target, flags) => {
    const rc = record('umount', [target, flags], `umount ${target}`);
    if (rc === 0) mounted.delete(target);
    return rc;
  },
  reboot: (cmd) => record('reboot', [cmd], 'reboot'),
  sethostname: (name) => record('sethostname', [name], 'sethostname'),
  setLinkUp: (name) => record('setLinkUp', [name], `setLinkUp ${name}`),
  sync: () => record('sync', [], 'sync'),
  armReaper: () => record('armReaper', [], 'armReaper'),
  reapOrphans: () => record('reapOrphans', [], 'reapOrphans'),
  setExitCommand: (cmd) => record('setExitCommand', [cmd], 'setExitCommand'),
  isInit: () => true,
};
const signals = require('os').constants.signals;
function internalBinding(name) {
  if (name === 'nodeos') return binding;
  if (name === 'constants') return { os: { signals } };
  throw new Error(`no internalBinding('${name}') here`);
}

const loaded = new Map();
function load(id) {
  if (id === 'fs') return fakeFs;
  if (id === 'timers') return require('timers');
  if (id === 'internal/errors') {
    return {
      UVException: errors.UVException,
      uvException: (ctx) => new errors.UVException(ctx),
    };
  }
  if (loaded.has(id)) return loaded.get(id).exports;
  const file = path.join(libDir, `${id}.js`);
  const source = fs.readFileSync(file, 'utf8');
  const module = { exports: {} };
  loaded.set(id, module);
  const fn = new Function('exports', 'require', 'module', 'process',
                          'internalBinding', 'primordials', source);
  fn(module.exports, load, module, process, internalBinding, primordials);
  return module.exports;
}

process._rawDebug = (line) => said.push(line);
const realExit = process.exit;
function finish(extra) {
  process.stdout.write(JSON.stringify({ calls, said, ...extra }) + '\n');
  realExit(0);
}

if (scenario.call === 'config') {
  const c = load('internal/nodeos/config');
  const { settings, problems } = c.bootSettings(scenario.cmdline);
  finish({
    settings: { ...settings },
    problems,
    words: c.commandLineWords(scenario.cmdline),
    resolv: scenario.pnp === undefined ? null : c.resolvConfFromPnp(scenario.pnp),
    hosts: c.hostsFile(settings.hostname),
  });
} else if (scenario.call === 'start') {
  files.set('/proc/cmdline', scenario.cmdline);
  const init = load('internal/nodeos/init');
  const t0 = Date.now();
  init.start();
  const settings = { ...init.getSettings() };
  if (!scenario.signal) finish({ settings });
  for (const kind of scenario.hooks || []) {
    init.addShutdownHook((signal) => {
      calls.push(['hook', kind, signal]);
      if (kind === 'throw') throw new Error('hook failed on purpose');
      if (kind === 'hang') return new Promise(() => {});
      return new Promise((resolve) => setTimeout(resolve, 50));
    });
  }
  if (scenario.appListens) {
    process.on(scenario.signal, () => {
      calls.push(['app', scenario.signal]);
      setTimeout(() => finish({ settings, exit: null }), 300);
    });
  }
  process.exit = (status) => finish({ settings, exit: status, ms: Date.now() - t0 });
  // Keeps the loop alive until an end comes.
  setTimeout(() => finish({ settings, exit: 'none after 20 s' }), 20000);
  process.kill(process.pid, scenario.signal);
} else {
  throw new Error(`unknown scenario ${scenarioJson}`);
}
