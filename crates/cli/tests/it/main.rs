//! ostler's integration tests: the real binary, in a temp dir, with a cleared
//! environment, driving real processes (the bundled guestbook service) and real
//! databases started by ostler-testsupport. One test binary; helpers in `support`.

mod support;

mod alerts;
mod backups;
mod bytes;
mod chaos;
mod config;
mod control;
mod databases;
mod disks;
mod drain;
mod errors;
mod forensics;
mod guards;
mod integrity;
mod jobs;
mod logs;
mod manage;
mod migrations;
mod plans;
mod probe;
mod processes;
mod progress;
mod proxy;
mod reload;
mod restore;
mod rotate;
mod runbook_jobs;
mod scheduled;
mod serve_logs;
mod supervise;
mod systemd;
mod upgrade;
