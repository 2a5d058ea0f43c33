//! Who holds a run: a process, named well enough that another process on the
//! same machine can tell at once whether it still exists.

/// The process that holds a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// Unique per process start (a UUIDv7).
    pub token: String,
    /// The machine's host name.
    pub host: String,
    /// The process id.
    pub pid: u32,
    /// The process's start time in clock ticks since boot (Linux), 0 when
    /// unknown: with the pid, it tells a live owner from a reused pid.
    pub started: u64,
}

impl Owner {
    /// This process, with a fresh token.
    pub fn this_process() -> Owner {
        let pid = std::process::id();
        Owner {
            token: uuid::Uuid::now_v7().to_string(),
            host: this_host(),
            pid,
            started: process(pid).map_or(0, |(_, started)| started),
        }
    }

    /// Whether the owner is known to be gone: it ran on this machine and its
    /// process no longer exists, has exited and waits to be reaped (a
    /// zombie), or its pid now names another process. An owner on another
    /// machine is never known gone here: its lease tells.
    pub fn is_gone(&self) -> bool {
        if self.host != this_host() || !std::path::Path::new("/proc/self/stat").exists() {
            return false;
        }
        match process(self.pid) {
            None => true,
            Some(('Z' | 'X', _)) => true,
            Some((_, started)) => self.started != 0 && started != self.started,
        }
    }
}

/// This machine's host name (empty when it cannot be read).
pub fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// Fields 3 and 22 of `/proc/PID/stat`: the process's state (`R`, `S`, `Z` for
/// a zombie...) and when it started, in ticks since boot.
fn process(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let started = rest.nth(18)?.parse().ok()?;
    Some((state, started))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_dead_pid_is_gone() {
        let me = Owner::this_process();
        assert!(me.started > 0, "start time read from /proc");
        assert!(!me.is_gone());
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let dead = Owner { pid, ..me.clone() };
        assert!(dead.is_gone());
        let reused = Owner {
            started: me.started + 1,
            ..me.clone()
        };
        assert!(reused.is_gone(), "same pid, other start time: another process");
        let elsewhere = Owner {
            host: "some-other-host".into(),
            pid,
            ..me
        };
        assert!(!elsewhere.is_gone(), "another machine's owner is judged by its lease");
    }

    #[test]
    fn a_zombie_owner_is_gone() {
        let me = Owner::this_process();
        // Exited and not waited for yet: a zombie.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let zombie = Owner {
            pid: child.id(),
            started: process(child.id()).map_or(0, |(_, s)| s),
            ..me
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !zombie.is_gone() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        assert!(zombie.is_gone(), "{:?}", process(zombie.pid));
        assert!(
            std::path::Path::new(&format!("/proc/{}", zombie.pid)).exists(),
            "not reaped yet"
        );
        child.wait().unwrap();
    }
}
