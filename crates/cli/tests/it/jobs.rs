//! `ostler jobs next` through the binary: the times a user would see, across the
//! daylight-saving days, in the job's zone, and the mistakes it names.

use crate::support::{service_header, Svc};

fn svc() -> Svc {
    Svc::new(&format!(
        "{}{}",
        service_header("timezone = \"Europe/Zurich\""),
        r#"
[[jobs]]
name = "nightly"
schedule = "30 2 * * *"
command = "true"

[[jobs]]
name = "janitor"
schedule = "FREQ=DAILY;BYHOUR=2;BYMINUTE=30"
command = "true"

[[jobs]]
name = "new-york"
schedule = "0 2 * * *"
timezone = "America/New_York"
command = "true"
"#
    ))
}

#[test]
fn jobs_next_lists_one_run_on_each_dst_day_in_the_services_zone() {
    let svc = svc();
    for job in ["nightly", "janitor"] {
        let out = svc.ok(&[
            "jobs",
            "next",
            job,
            "--count",
            "3",
            "--from",
            "2026-03-28 12:00 Europe/Zurich",
        ]);
        assert_eq!(
            out,
            "2026-03-29T03:00:00+02:00\n2026-03-30T02:30:00+02:00\n2026-03-31T02:30:00+02:00\n",
            "{job}"
        );
        let out = svc.ok(&[
            "jobs",
            "next",
            job,
            "--count",
            "2",
            "--from",
            "2026-10-24T12:00:00Z",
        ]);
        assert_eq!(
            out, "2026-10-25T02:30:00+02:00\n2026-10-26T02:30:00+01:00\n",
            "{job}"
        );
    }
}

#[test]
fn jobs_next_is_strictly_after_from_and_in_the_jobs_own_zone_with_json() {
    let svc = svc();
    // From exactly a run's time: that run is not listed.
    let out = svc.ok(&[
        "--json",
        "jobs",
        "next",
        "nightly",
        "--count",
        "1",
        "--from",
        "2026-06-01 02:30 Europe/Zurich",
    ]);
    let list: Vec<String> = serde_json::from_str(&out).unwrap();
    assert_eq!(list, ["2026-06-02T02:30:00+02:00"]);
    // croner-rust #16's case: 02:00 does not exist in New York that day; it runs at 03:00.
    let out = svc.ok(&[
        "jobs",
        "next",
        "new-york",
        "--count",
        "1",
        "--from",
        "2025-03-09 01:30 America/New_York",
    ]);
    assert_eq!(out, "2025-03-09T03:00:00-04:00\n");
}

#[test]
fn jobs_next_names_an_unknown_job_and_a_time_without_zone() {
    let svc = svc();
    let err = svc.fails(&["jobs", "next", "weekly"]);
    assert!(err.contains("no job named `weekly`"), "{err}");
    assert!(err.contains("jobs: nightly, janitor, new-york"), "{err}");
    let err = svc.fails(&["jobs", "next", "nightly", "--from", "2026-06-01 02:30"]);
    assert!(err.contains("has no zone"), "{err}");
}
