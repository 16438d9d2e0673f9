//! Choosing between KVM and TCG.

use std::fmt;
use std::fs::OpenOptions;
use std::os::fd::AsRawFd;

/// The QEMU accelerator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Accel {
    /// KVM when `/dev/kvm` is usable, else TCG.
    #[default]
    Auto,
    /// KVM, or an error when it is not usable.
    Kvm,
    /// Software emulation: works everywhere, several times slower.
    Tcg,
}

impl Accel {
    /// The value of QEMU's `-accel` option (`Auto` resolves first).
    pub fn qemu_name(self) -> &'static str {
        match self {
            Accel::Auto => "auto",
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

impl std::str::FromStr for Accel {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Accel> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Accel::Auto),
            "kvm" => Ok(Accel::Kvm),
            "tcg" => Ok(Accel::Tcg),
            _ => anyhow::bail!("unknown accelerator {s:?}: use auto, kvm or tcg"),
        }
    }
}

/// Overrides [`Accel::Auto`] (only): `auto`, `kvm` or `tcg`. For machines
/// where the automatic choice is wrong, without changing the caller.
pub const ACCEL_VAR: &str = "NODEOS_QEMU_ACCEL";

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Accel::Auto => "auto",
            Accel::Kvm => "KVM",
            Accel::Tcg => "TCG",
        })
    }
}

/// The accelerator a guest runs with, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelChoice {
    pub accel: Accel,
    /// E.g. "TCG: /dev/kvm: KVM_CREATE_VM failed: ...".
    pub reason: String,
}

impl AccelChoice {
    /// Resolves `requested`: `Auto` becomes KVM or TCG (unless
    /// [`ACCEL_VAR`] says otherwise); `Kvm` fails with the reason when KVM
    /// is not usable.
    pub fn resolve(requested: Accel) -> anyhow::Result<AccelChoice> {
        let requested = match (requested, std::env::var(ACCEL_VAR)) {
            (Accel::Auto, Ok(value)) if !value.trim().is_empty() => value
                .parse::<Accel>()
                .map_err(|e| anyhow::anyhow!("{ACCEL_VAR}: {e}"))?,
            _ => requested,
        };
        match requested {
            Accel::Tcg => Ok(AccelChoice {
                accel: Accel::Tcg,
                reason: "TCG: requested".into(),
            }),
            Accel::Kvm => match kvm_usable() {
                Ok(()) => Ok(AccelChoice {
                    accel: Accel::Kvm,
                    reason: "KVM: requested, /dev/kvm usable".into(),
                }),
                Err(why) => anyhow::bail!(
                    "KVM was requested but is not usable ({why}); use the TCG or auto accelerator"
                ),
            },
            Accel::Auto => Ok(match kvm_usable() {
                Ok(()) => AccelChoice {
                    accel: Accel::Kvm,
                    reason: "KVM: /dev/kvm usable".into(),
                },
                Err(why) => AccelChoice {
                    accel: Accel::Tcg,
                    reason: format!("TCG: KVM not usable ({why})"),
                },
            }),
        }
    }
}

// From <linux/kvm.h>: _IO(KVMIO, 0x00) and _IO(KVMIO, 0x01), KVMIO = 0xAE.
const KVM_GET_API_VERSION: u64 = 0xAE00;
const KVM_CREATE_VM: u64 = 0xAE01;
const KVM_API_VERSION: i32 = 12;

/// Whether this process can run a KVM guest, with the reason when not.
///
/// Opening `/dev/kvm` is not enough. On some virtual machines the device
/// exists, even answers KVM_CREATE_VM, while the CPU exposes no VMX/SVM, and
/// a guest started with `-accel kvm` then never runs (a Firecracker VM,
/// for one: QEMU prints nothing). So the CPU flags are
/// checked too.
pub fn kvm_usable() -> Result<(), String> {
    if !cfg!(any(target_arch = "x86_64", target_arch = "x86")) {
        return Err("the host is not x86".into());
    }
    let cpuinfo =
        std::fs::read_to_string("/proc/cpuinfo").map_err(|e| format!("/proc/cpuinfo: {e}"))?;
    if !has_virtualization_flag(&cpuinfo) {
        return Err("the CPU has no vmx/svm flag (no hardware virtualisation here)".into());
    }
    let kvm = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .map_err(|e| format!("/dev/kvm: {e}"))?;
    // SAFETY: plain ioctls without argument on a file descriptor we own.
    let version = unsafe { libc::ioctl(kvm.as_raw_fd(), KVM_GET_API_VERSION as _, 0) };
    if version != KVM_API_VERSION {
        return Err(format!(
            "/dev/kvm: KVM_GET_API_VERSION returned {version}, expected {KVM_API_VERSION}"
        ));
    }
    // SAFETY: as above; the returned descriptor is closed right away.
    let vm = unsafe { libc::ioctl(kvm.as_raw_fd(), KVM_CREATE_VM as _, 0) };
    if vm < 0 {
        return Err(format!(
            "/dev/kvm: KVM_CREATE_VM failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: `vm` is a descriptor we just got and nobody else holds.
    unsafe { libc::close(vm) };
    Ok(())
}

fn has_virtualization_flag(cpuinfo: &str) -> bool {
    cpuinfo
        .lines()
        .filter(|line| line.starts_with("flags"))
        .flat_map(|line| line.split_whitespace())
        .any(|flag| flag == "vmx" || flag == "svm")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtualization_flags_are_found() {
        assert!(has_virtualization_flag("flags\t\t: fpu vme vmx sse2\n"));
        assert!(has_virtualization_flag("flags\t: svm lm\n"));
        assert!(!has_virtualization_flag(
            "flags\t\t: fpu sse2 hypervisor\nvmx flags\t: ept\n"
        ));
    }

    #[test]
    fn auto_resolves_to_a_concrete_accelerator_with_a_reason() {
        if std::env::var_os(ACCEL_VAR).is_some() {
            return; // overridden by the environment
        }
        let choice = AccelChoice::resolve(Accel::Auto).unwrap();
        assert_ne!(choice.accel, Accel::Auto);
        assert_eq!(choice.accel == Accel::Kvm, kvm_usable().is_ok());
        assert!(choice.reason.starts_with(&choice.accel.to_string()));
    }

    #[test]
    fn requested_kvm_fails_with_the_reason_when_unusable() {
        match (kvm_usable(), AccelChoice::resolve(Accel::Kvm)) {
            (Ok(()), Ok(choice)) => assert_eq!(choice.accel, Accel::Kvm),
            (Err(why), Err(err)) => assert!(err.to_string().contains(&why)),
            (usable, resolved) => panic!("inconsistent: {usable:?} vs {resolved:?}"),
        }
    }
}
