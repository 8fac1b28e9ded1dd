//! Where `tracing`'s events go. A command logs to stderr only, and only what
//! `OSTLER_LOG` asks for (its results and messages go through `outln!` and the
//! [`crate::reporter::TerminalReporter`]). The daemon is different: everything it says
//! is a log line (its reporter is [`crate::reporter::TracingReporter`]), at `info` and
//! up unless `OSTLER_LOG` says otherwise, as text or one JSON object a line
//! (`--log-format`), on stderr (systemd's journal) and in its own log file,
//! `<state_dir>/serve.log`, rotated by size into `serve.log.1` (the newest) up to
//! `serve.log.N` (file-rotate: tracing-appender rotates by time only).

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use ostler_core::logrotate::config::ByteSize;
use ostler_core::{Error, Result};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// A line of text: time, level, spans, message, fields.
    Text,
    /// One JSON object a line: `timestamp`, `level`, `fields` (with `message`), `target`,
    /// `span` and `spans` (a component's `component`, an operation's `operation` and
    /// `instance`).
    Json,
}

/// The daemon's logging options.
#[derive(clap::Args, Debug)]
pub struct LogArgs {
    /// How log lines are written, on stderr and in the log file.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// The daemon's own log file [default: <state_dir>/serve.log]; `-` or `none`: stderr
    /// only.
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,
    /// Rotate the log file once it is bigger than this: bytes, or with k, M or G (powers
    /// of 1024).
    #[arg(long, value_name = "SIZE", default_value = "10M", value_parser = parse_log_size)]
    pub log_max_size: u64,
    /// How many rotated log files to keep (`serve.log.1` is the newest).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub log_keep: usize,
}

fn parse_log_size(text: &str) -> std::result::Result<u64, String> {
    match ByteSize::parse(text)? {
        ByteSize(0) => Err("a log file cannot be rotated at 0 bytes".into()),
        ByteSize(n) => Ok(n),
    }
}

impl LogArgs {
    /// The log file, unless `--log-file -` or `none` asked for stderr only.
    pub fn file(&self, state_dir: &Path) -> Option<PathBuf> {
        match &self.log_file {
            None => Some(state_dir.join("serve.log")),
            Some(p) if p == Path::new("-") || p == Path::new("none") => None,
            Some(p) => Some(p.clone()),
        }
    }
}

/// Logging for a command: stderr, filtered by `OSTLER_LOG` (nothing by default).
pub fn init_command() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::from_env("OSTLER_LOG"))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Logging for the daemon: `info` and up (or `OSTLER_LOG`), in `args.log_format`, on
/// stderr and in the log file. Returns the log file's path, if there is one.
/// Called with the daemon lock held: only the daemon writes and rotates its file.
pub fn init_serve(args: &LogArgs, state_dir: &Path) -> Result<Option<PathBuf>> {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .with_env_var("OSTLER_LOG")
        .from_env_lossy();
    let mut layers = vec![layer(
        args.log_format,
        std::io::stderr,
        std::io::stderr().is_terminal(),
    )];
    let file = args.file(state_dir);
    if let Some(path) = &file {
        let rotating = open_rotating(path, args.log_max_size, args.log_keep)?;
        layers.push(layer(args.log_format, Mutex::new(rotating), false));
    }
    tracing_subscriber::registry()
        .with(layers)
        .with(filter)
        .try_init()
        .map_err(|e| Error::failed(format!("setting up the daemon's logging: {e}")))?;
    Ok(file)
}

/// A formatting layer writing to `writer`.
fn layer<W>(format: LogFormat, writer: W, ansi: bool) -> Box<dyn Layer<Registry> + Send + Sync>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().boxed(),
    }
}

/// The log file (owner-only, like all ostler writes), appended to and rotated once it
/// passes `max_size` bytes, after a whole line, keeping `keep` rotated files. Opened
/// here first so that a path that cannot be written is an error naming it (file-rotate
/// would drop the lines silently).
fn open_rotating(path: &Path, max_size: u64, keep: usize) -> Result<FileRotate<AppendCount>> {
    let mut options = OpenOptions::new();
    options.read(true).create(true).append(true).mode(0o600);
    options
        .open(path)
        .map_err(|e| Error::io_at("open the log file", path, e))?;
    Ok(FileRotate::new(
        path,
        AppendCount::new(keep),
        ContentLimit::BytesSurpassed(usize::try_from(max_size).unwrap_or(usize::MAX)),
        Compression::None,
        Some(options),
    ))
}
