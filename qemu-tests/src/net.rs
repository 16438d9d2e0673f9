//! The guest's network: one virtio-net PCI NIC on QEMU's user-mode network
//! (slirp: no root, no host configuration), with host ports forwarded to
//! the guest.
//!
//! On that network the guest is 10.0.2.15, the host is reachable as
//! 10.0.2.2 (the gateway), QEMU's DNS forwarder is 10.0.2.3, and IPv6 gets
//! a `fec0::/64` address by router advertisement. The kernel configures the
//! NIC itself before init starts (`ip=dhcp`, its IP autoconfiguration), so
//! node needs no network tool.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::str::FromStr;

/// The kernel command line argument that makes the kernel bring up the NIC
/// and the loopback device and ask DHCP for an address before init runs.
/// Only with a NIC: without one the kernel waits for a device to appear.
pub const NET_AUTOCONF_ARG: &str = "ip=dhcp";

/// The host as the guest sees it on QEMU's user network.
pub const HOST_FROM_GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 2);

/// QEMU's DNS forwarder on its user network, the name server its DHCP
/// answer gives (and so the one PID 1 writes to /etc/resolv.conf).
pub const DNS_FROM_GUEST: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 3);

/// The guest's address on QEMU's user network (its DHCP answer).
pub const GUEST_ADDR: Ipv4Addr = Ipv4Addr::new(10, 0, 2, 15);

/// Where forwarded host ports listen: the loopback address only, so a guest
/// service is never exposed to the host's network by accident.
pub const FORWARD_BIND: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// One forwarded TCP port: `127.0.0.1:host` on the host reaches `guest` in
/// the guest (like `docker run -p HOST:GUEST`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortForward {
    pub host: u16,
    pub guest: u16,
}

impl FromStr for PortForward {
    type Err = String;

    /// `HOST:GUEST`, e.g. `8080:80`.
    fn from_str(s: &str) -> Result<PortForward, String> {
        let bad = || {
            format!("{s:?} is not HOST:GUEST; give two TCP port numbers (1-65535), e.g. -p 8080:80")
        };
        let (h, g) = s.split_once(':').ok_or_else(bad)?;
        let port = |t: &str| t.trim().parse::<u16>().ok().filter(|p| *p != 0);
        Ok(PortForward {
            host: port(h).ok_or_else(bad)?,
            guest: port(g).ok_or_else(bad)?,
        })
    }
}

impl fmt::Display for PortForward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{FORWARD_BIND}:{} -> guest:{}", self.host, self.guest)
    }
}

/// The NIC and its forwarded ports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Network {
    pub forwards: Vec<PortForward>,
}

impl Network {
    /// A NIC with `forwards`.
    pub fn with_forwards(forwards: Vec<PortForward>) -> Network {
        Network { forwards }
    }

    /// QEMU's options for this network.
    pub fn qemu_args(&self) -> Vec<String> {
        let mut netdev = String::from("user,id=net0");
        for f in &self.forwards {
            netdev.push_str(&format!(
                ",hostfwd=tcp:{FORWARD_BIND}:{}-:{}",
                f.host, f.guest
            ));
        }
        vec![
            "-netdev".into(),
            netdev,
            "-device".into(),
            "virtio-net-pci,netdev=net0".into(),
        ]
    }

    /// Fails with one line when a host port is given twice or cannot be
    /// bound now (in use, or privileged): QEMU would otherwise start and
    /// then stop with a message about a "host forwarding rule".
    pub fn check_host_ports(&self) -> anyhow::Result<()> {
        for (i, f) in self.forwards.iter().enumerate() {
            if self.forwards[..i].iter().any(|g| g.host == f.host) {
                anyhow::bail!(
                    "host port {} is forwarded twice; give each -p a different HOST port",
                    f.host
                );
            }
            if let Err(e) = TcpListener::bind(SocketAddrV4::new(FORWARD_BIND, f.host)) {
                anyhow::bail!(
                    "cannot forward {FORWARD_BIND}:{} to the guest: {e}; pick a free host port (e.g. -p {}:{})",
                    f.host,
                    free_port().unwrap_or(8080),
                    f.guest
                );
            }
        }
        Ok(())
    }
}

/// A TCP port on 127.0.0.1 that is free at the time of the call (the kernel
/// picks it), for tests and suggestions. Another process may take it before
/// it is used; callers that cannot retry should say so.
pub fn free_port() -> Option<u16> {
    TcpListener::bind(SocketAddrV4::new(FORWARD_BIND, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_parse() {
        assert_eq!(
            "8080:80".parse::<PortForward>(),
            Ok(PortForward {
                host: 8080,
                guest: 80
            })
        );
        for bad in ["8080", "0:80", "80:0", "a:b", "70000:80", ":80", "8080:"] {
            let e = bad.parse::<PortForward>().unwrap_err();
            assert!(e.contains("HOST:GUEST"), "{bad}: {e}");
        }
    }

    #[test]
    fn qemu_args_bind_forwards_to_loopback() {
        let n = Network::with_forwards(vec![
            PortForward {
                host: 8080,
                guest: 80,
            },
            PortForward {
                host: 2222,
                guest: 22,
            },
        ]);
        assert_eq!(
            n.qemu_args(),
            [
                "-netdev",
                "user,id=net0,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=tcp:127.0.0.1:2222-:22",
                "-device",
                "virtio-net-pci,netdev=net0"
            ]
        );
    }

    #[test]
    fn busy_and_doubled_host_ports_are_refused() {
        let held = TcpListener::bind((FORWARD_BIND, 0)).unwrap();
        let port = held.local_addr().unwrap().port();
        let n = Network::with_forwards(vec![PortForward {
            host: port,
            guest: 80,
        }]);
        let e = n.check_host_ports().unwrap_err().to_string();
        assert!(
            e.contains(&port.to_string()) && e.contains("free host port"),
            "{e}"
        );
        drop(held);
        n.check_host_ports().unwrap();
        let twice = Network::with_forwards(vec![
            PortForward {
                host: port,
                guest: 80,
            },
            PortForward {
                host: port,
                guest: 81,
            },
        ]);
        assert!(
            twice
                .check_host_ports()
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
    }
}
