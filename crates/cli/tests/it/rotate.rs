//! `ostler logs rotate` as a user sees it: an instance's own log rotated by
//! `[log_rotation]` alone (copied and truncated, since the running instance holds it
//! open, then the instance told with a signal), the dry run that changes nothing,
//! and a missing file that fails the command naming its `[[logs]]` entry.

use std::time::Duration;

use crate::support::*;

/// An instance whose process says `got HUP` in its own log on SIGHUP.
fn svc_with_a_hup_instance(extra: &str) -> Svc {
    let port = free_port();
    let svc = Svc::new(&format!(
        "{}[instances.app]\ndir = \"app\"\nstart = \"sh run.sh\"\nport = {port}\nstop_timeout = \"2s\"\n\n[log_rotation]\nrotate = 2\nsignal = \"HUP\"\n{extra}",
        service_header("")
    ));
    std::fs::create_dir_all(svc.path().join("app")).unwrap();
    std::fs::write(
        svc.path().join("app/run.sh"),
        "trap 'echo got HUP' HUP\necho started\nwhile true; do sleep 0.1; done\n",
    )
    .unwrap();
    svc
}

fn read(svc: &Svc, rel: &str) -> String {
    std::fs::read_to_string(svc.path().join(rel)).unwrap_or_default()
}

#[test]
fn an_instances_own_log_is_copied_truncated_and_the_instance_signalled() {
    let svc = svc_with_a_hup_instance("");
    svc.ok(&["start", "app"]);
    let log = ".ostler/logs/app.log";
    wait_for(Duration::from_secs(10), "the instance's first line", || {
        read(&svc, log).contains("started")
    });
    let pid = svc.pid("app").unwrap();

    // Not forced, first seen: recorded, not rotated (weekly by default).
    let out = svc.ok(&["logs", "rotate"]);
    assert!(
        out.contains(&format!("skip {log}: not due (weekly, last rotated ")),
        "{out}"
    );

    let before = read(&svc, log);
    let out = svc.ok(&["logs", "rotate", "--force", "--dry-run"]);
    assert!(
        out.contains(&format!("would rotate {log} (forced)")),
        "{out}"
    );
    assert!(
        out.contains(&format!("  copy {log} -> {log}.1, then truncate it")),
        "{out}"
    );
    assert!(
        out.contains(&format!("  signal HUP to app (process group {pid})")),
        "{out}"
    );
    assert!(
        out.contains("dry run: would rotate 1 of 1 files; nothing changed"),
        "{out}"
    );
    assert!(!svc.path().join(format!("{log}.1")).exists());
    assert_eq!(read(&svc, log), before);

    let json: serde_json::Value =
        serde_json::from_str(&svc.ok(&["logs", "rotate", "--force", "--json"])).unwrap();
    let file = &json["files"][0];
    assert_eq!(file["outcome"], "rotated", "{json:#}");
    assert_eq!(file["why"], "forced", "{json:#}");
    assert_eq!(file["source"]["instance"], "app", "{json:#}");
    assert!(read(&svc, &format!("{log}.1")).contains("started"));
    wait_for(
        Duration::from_secs(10),
        "the instance to say it got HUP",
        || read(&svc, log).contains("got HUP"),
    );
    assert!(!read(&svc, log).contains("started"), "{}", read(&svc, log));
    let journal = svc.ok(&["journal"]);
    assert!(
        journal.contains("rotate-logs") && journal.contains("rotated 1 of 1 files"),
        "{journal}"
    );
    svc.ok(&["stop", "app"]);
}

#[test]
fn a_missing_log_fails_the_command_naming_its_entry_and_the_others_still_rotate() {
    let svc = Svc::new(&format!(
        "{}[[logs]]\npath = \"gone.log\"\n\n[[logs]]\npath = \"here.log\"\nrotate = 1\n",
        service_header("")
    ));
    std::fs::write(svc.path().join("here.log"), "a line\n").unwrap();
    let out = svc.run(&["logs", "rotate", "--force"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("failed gone.log: ")
            && stdout.contains("gone.log does not exist (named by [[logs]] `gone.log` at ")
            && stdout.contains("ostler.toml:6; set `missingok = true` if it may be absent)"),
        "{stdout}"
    );
    assert!(stdout.contains("rotated here.log (forced)"), "{stdout}");
    assert!(
        stdout.contains("rotated 1 of 2 files; 1 failed"),
        "{stdout}"
    );
    assert_eq!(read(&svc, "here.log.1"), "a line\n");
    assert_eq!(read(&svc, "here.log"), "");
}
