'use strict';
// NodeOS example app: an HTTP server that is the whole userspace (PID 1).
//
//   cargo xtask run --arch x86_64 --app examples/hello-server -p 8080:80
//   curl 127.0.0.1:8080
//
// It answers every request with the Node version, the CPU architecture and
// the guest's uptime, as JSON. The port is 80, or the PORT environment
// variable (the kernel passes `PORT=8080` on its command line to init as an
// environment variable).

const http = require('http');
const os = require('os');

const port = Number(process.env.PORT) || 80;

const server = http.createServer((req, res) => {
  const body = JSON.stringify({
    node: process.versions.node,
    arch: process.arch,
    // Seconds since the guest's kernel booted (sysinfo(2): needs no /proc).
    uptime: os.uptime(),
    pid: process.pid,
  }) + '\n';
  res.writeHead(200, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
});

// No host given: Node listens on `::`, which takes IPv4 and IPv6.
server.listen(port, () => {
  console.log(`hello-server: listening on port ${port} ` +
    `(node ${process.versions.node}, ${process.arch}, pid ${process.pid})`);
});
