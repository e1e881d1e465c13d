//! What /proc says about a process: whether it runs, and when it started (so that a recycled
//! pid is not mistaken for a sandbox of a previous server run).

/// The start time (clock ticks since boot) of process `pid`, if it exists and is not a zombie.
pub(crate) fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may itself contain ") "; the fields
    // after the last ')' are space-separated: state is field 3, start time field 22.
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    fields.nth(18)?.parse().ok()
}

/// Whether process `pid` runs and is the one that started at `started` ticks.
pub(crate) fn is_alive(pid: i32, started: u64) -> bool {
    start_time(pid) == Some(started)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_itself_and_not_a_dead_child() {
        let me = std::process::id() as i32;
        let started = start_time(me).expect("this process runs");
        assert!(is_alive(me, started));
        assert!(!is_alive(me, started + 1));
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        // Exited but not yet reaped: a zombie counts as dead.
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(start_time(pid), None);
        child.wait().unwrap();
        assert_eq!(start_time(pid), None);
    }
}
