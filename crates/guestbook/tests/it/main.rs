//! guestbook's integration tests: the real binary, real HTTP, a real SQLite file.
//! One test binary (faster to link); helpers live in `support`.

mod accesslog;
mod api;
mod lifecycle;
mod support;
