//! The rotation keys of `ostler.toml`, in logrotate's words: one [`RotationConfig`]
//! type serves `[[logs]]` entries, the `[log_rotation]` default and an instance's
//! `[instances.X.log_rotation]` override. Every key is optional so that the layers
//! merge key by key ([`RotationConfig::over`]); [`Rotation`] is the result with the
//! defaults filled in.
//!
//! Values that can be wrong on their own (sizes, modes, signal names, date formats)
//! are refused by their `Deserialize`, so toml points at them; what needs two keys
//! or the rest of the config is [`validate`]d with the spans kept here.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// One `[[logs]]` entry, `[log_rotation]` or `[instances.X.log_rotation]`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RotationConfig {
    /// `[[logs]]` only: the file, or a glob (`logs/*.log`), relative to the config file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<Spanned<String>>,
    /// `[[logs]]` only: the instance the file belongs to (its process gets `signal`,
    /// `postrotate` runs with its environment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<Spanned<String>>,
    /// hourly | daily | weekly | monthly | yearly. Default weekly (Debian's
    /// /etc/logrotate.conf), unless `size` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency: Option<Frequency>,
    /// Rotate when the file is at least this big, whatever the time (`100k`, `10M`,
    /// `1G`); instead of `frequency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Spanned<ByteSize>>,
    /// With `frequency`: not before the file is at least this big.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minsize: Option<ByteSize>,
    /// With `frequency`: also before its time once the file is bigger than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxsize: Option<ByteSize>,
    /// How many rotated files to keep (0: the rotated file is removed). Default 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotate: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compress: Option<bool>,
    /// gzip (default, `.gz`) or zstd (`.zst`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compress_method: Option<CompressMethod>,
    /// Leave the newest rotated file uncompressed until the next rotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delaycompress: Option<bool>,
    /// Where rotated files go, relative to the log's directory (as logrotate); it
    /// must exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub olddir: Option<PathBuf>,
    /// Name rotated files `x.log-20261202` instead of `x.log.1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dateext: Option<bool>,
    /// With `dateext`: the suffix, from `%Y %m %d %H %M %S %s` and literal text;
    /// default `-%Y%m%d` (`-%Y%m%d%H` when hourly).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dateformat: Option<DateFormat>,
    /// Do not rotate an empty file (`ifempty = false`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notifempty: Option<bool>,
    /// Rotate an empty file too (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ifempty: Option<bool>,
    /// A missing file (or a glob matching nothing) is no error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missingok: Option<bool>,
    /// Copy the file and truncate it in place, for writers that keep it open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub copytruncate: Option<bool>,
    /// After renaming, create a new empty file: `true` (the old file's mode), a mode
    /// (`"0640"`), or `false`. Owner and group are the old file's. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create: Option<Spanned<Create>>,
    /// A shell command run after each file is rotated (before compressing), with the
    /// log's path as `$1`, in the config file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postrotate: Option<String>,
    /// A signal (`HUP`, `USR1`...) sent to the instance's process group after each
    /// rotation, so it reopens its files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<Spanned<SignalName>>,
    /// Remove rotated files older than this many days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maxage: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Frequency {
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
}

impl Frequency {
    /// logrotate's word for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Frequency::Hourly => "hourly",
            Frequency::Daily => "daily",
            Frequency::Weekly => "weekly",
            Frequency::Monthly => "monthly",
            Frequency::Yearly => "yearly",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CompressMethod {
    #[default]
    Gzip,
    Zstd,
}

impl CompressMethod {
    /// The extension rotated files get, as logrotate's `compressext`.
    pub fn extension(self) -> &'static str {
        match self {
            CompressMethod::Gzip => ".gz",
            CompressMethod::Zstd => ".zst",
        }
    }
}

/// A size written logrotate's way: bytes, or with `k`, `M` or `G` (powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl ByteSize {
    pub fn parse(text: &str) -> std::result::Result<ByteSize, String> {
        let t = text.trim();
        let (digits, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
            Some(i) => t.split_at(i),
            None => (t, ""),
        };
        let factor = match unit.trim() {
            "" => 1,
            "k" | "K" => 1 << 10,
            "M" => 1 << 20,
            "G" => 1 << 30,
            _ => {
                return Err(format!(
                    "invalid size `{text}` (write e.g. 4096, \"100k\", \"10M\", \"1G\")"
                ))
            }
        };
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(factor))
            .map(ByteSize)
            .ok_or_else(|| {
                format!("invalid size `{text}` (write e.g. 4096, \"100k\", \"10M\", \"1G\")")
            })
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a size: bytes, or a string such as \"100k\", \"10M\", \"1G\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("invalid size {v}: a size cannot be negative")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ByteSize, E> {
                ByteSize::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for ByteSize {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

/// `create`: `true`, `false`, or a mode written in octal (`"0640"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    No,
    /// With the rotated file's mode.
    Yes,
    Mode(u32),
}

impl<'de> Deserialize<'de> for Create {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Create;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("true, false, or a mode in octal such as \"0640\"")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Create, E> {
                Ok(if v { Create::Yes } else { Create::No })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Create, E> {
                match u32::from_str_radix(v, 8) {
                    Ok(m) if m <= 0o7777 && !v.is_empty() => Ok(Create::Mode(m)),
                    _ => Err(E::custom(format!(
                        "invalid mode `{v}` for create (write it in octal, e.g. \"0640\")"
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Create {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Create::No => s.serialize_bool(false),
            Create::Yes => s.serialize_bool(true),
            Create::Mode(m) => s.serialize_str(&format!("{m:04o}")),
        }
    }
}

/// A signal's name, with or without `SIG` (`HUP`, `SIGUSR1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalName(pub nix::sys::signal::Signal);

impl<'de> Deserialize<'de> for SignalName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let upper = text.to_ascii_uppercase();
        let full = if upper.starts_with("SIG") {
            upper
        } else {
            format!("SIG{upper}")
        };
        full.parse::<nix::sys::signal::Signal>()
            .map(SignalName)
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "unknown signal `{text}` (write e.g. \"HUP\", \"USR1\")"
                ))
            })
    }
}

impl std::fmt::Display for SignalName {
    /// Without `SIG`, as written in the config: `HUP`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str().trim_start_matches("SIG"))
    }
}

impl Serialize for SignalName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A `dateformat`: literal text and the conversions logrotate can also find again
/// in file names (`%Y %m %d %H %M %S %s`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateFormat(pub String);

impl DateFormat {
    /// The default suffix: `-%Y%m%d`, or `-%Y%m%d%H` for hourly rotation.
    pub fn default_for(frequency: Option<Frequency>) -> DateFormat {
        DateFormat(
            if frequency == Some(Frequency::Hourly) {
                "-%Y%m%d%H"
            } else {
                "-%Y%m%d"
            }
            .into(),
        )
    }

    fn check(text: &str) -> std::result::Result<(), String> {
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '%' {
                match chars.next() {
                    Some('Y' | 'm' | 'd' | 'H' | 'M' | 'S' | 's') => {}
                    other => {
                        return Err(format!(
                        "dateformat `{text}`: `%{}` is not supported (use %Y %m %d %H %M %S %s)",
                        other.map(String::from).unwrap_or_default()
                    ))
                    }
                }
            } else if c == '/' {
                return Err(format!("dateformat `{text}` cannot contain `/`"));
            }
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for DateFormat {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        DateFormat::check(&text).map_err(serde::de::Error::custom)?;
        Ok(DateFormat(text))
    }
}

impl Serialize for DateFormat {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// The settings of one log file, every layer merged and the defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rotation {
    /// `None` when rotation is by `size` alone.
    pub frequency: Option<Frequency>,
    pub size: Option<u64>,
    pub minsize: Option<u64>,
    pub maxsize: Option<u64>,
    pub rotate: u32,
    /// The compression, when `compress` is on.
    pub compress: Option<CompressMethod>,
    pub delaycompress: bool,
    pub olddir: Option<PathBuf>,
    /// The suffix format, when `dateext` is on.
    pub dateext: Option<DateFormat>,
    pub ifempty: bool,
    pub missingok: bool,
    pub copytruncate: bool,
    /// The mode of the new file, `Some(None)` for the old file's; `None`: no new file.
    pub create: Option<Option<u32>>,
    pub postrotate: Option<String>,
    pub signal: Option<SignalName>,
    pub maxage_days: Option<u32>,
}

impl RotationConfig {
    /// These keys, each falling back to `under`'s where not given.
    pub fn over(&self, under: &RotationConfig) -> RotationConfig {
        macro_rules! pick {
            ($($k:ident),*) => { RotationConfig { $($k: self.$k.clone().or_else(|| under.$k.clone())),* } };
        }
        pick!(
            path,
            instance,
            frequency,
            size,
            minsize,
            maxsize,
            rotate,
            compress,
            compress_method,
            delaycompress,
            olddir,
            dateext,
            dateformat,
            notifempty,
            ifempty,
            missingok,
            copytruncate,
            create,
            postrotate,
            signal,
            maxage
        )
    }

    /// The settings with the defaults filled in. `writer_keeps_it_open`: the file is
    /// an instance's own log, which its process holds open (ostler started it with the
    /// file as stdout): unless `create` or `copytruncate` is said, it is copied and
    /// truncated, since a renamed file would go on growing under its new name.
    pub fn resolve(&self, writer_keeps_it_open: bool) -> Rotation {
        let size = self.size.as_ref().map(|s| s.get_ref().0);
        let frequency = match (self.frequency, size) {
            (Some(f), _) => Some(f),
            (None, Some(_)) => None,
            (None, None) => Some(Frequency::Weekly),
        };
        let copytruncate = self
            .copytruncate
            .unwrap_or(writer_keeps_it_open && self.create.is_none());
        let create = match self.create.as_ref().map(|c| *c.get_ref()) {
            _ if copytruncate => None,
            Some(Create::No) => None,
            Some(Create::Mode(m)) => Some(Some(m)),
            Some(Create::Yes) | None => Some(None),
        };
        Rotation {
            frequency: if size.is_some() { None } else { frequency },
            size,
            minsize: self.minsize.map(|s| s.0),
            maxsize: self.maxsize.map(|s| s.0),
            rotate: self.rotate.unwrap_or(4),
            compress: self
                .compress
                .unwrap_or(false)
                .then(|| self.compress_method.unwrap_or_default()),
            delaycompress: self.delaycompress.unwrap_or(false),
            olddir: self.olddir.clone(),
            dateext: self.dateext.unwrap_or(false).then(|| {
                self.dateformat
                    .clone()
                    .unwrap_or(DateFormat::default_for(frequency))
            }),
            ifempty: self.ifempty.or(self.notifempty.map(|n| !n)).unwrap_or(true),
            missingok: self.missingok.unwrap_or(false),
            copytruncate,
            create,
            postrotate: self.postrotate.clone(),
            signal: self.signal.as_ref().map(|s| *s.get_ref()),
            maxage_days: self.maxage,
        }
    }
}

/// A problem found in rotation keys: where (a byte offset in the file, 0 when
/// unknown) and what.
pub type Problem = (usize, String);

/// Checks what serde cannot: keys that need each other or exclude each other, and
/// that `[[logs]]` entries have a path (and only they do). `table` names the table
/// in messages (`[[logs]]`, `[log_rotation]`, `[instances.gb-1.log_rotation]`);
/// `anchor` is where to point when no key of the problem has a span.
pub fn validate(
    rotation: &RotationConfig,
    table: &str,
    is_logs_entry: bool,
    anchor: usize,
    instances: &[String],
) -> Vec<Problem> {
    let mut out = Vec::new();
    if is_logs_entry {
        match &rotation.path {
            None => out.push((anchor, format!("{table} entry needs `path`"))),
            Some(p) if p.get_ref().trim().is_empty() => {
                out.push((p.span().start, format!("{table} `path` is empty")))
            }
            Some(p) => {
                if let Err(e) = glob::Pattern::new(p.get_ref()) {
                    out.push((
                        p.span().start,
                        format!("{table} `path` `{}` is not a glob: {e}", p.get_ref()),
                    ));
                }
            }
        }
        if let Some(i) = &rotation.instance {
            if !instances.contains(i.get_ref()) {
                out.push((
                    i.span().start,
                    format!(
                        "{table} names instance `{}`, which is not defined (instances: {})",
                        i.get_ref(),
                        instances.join(", ")
                    ),
                ));
            }
        } else if let Some(s) = &rotation.signal {
            out.push((
                s.span().start,
                format!("{table} `signal` needs `instance`: whose process is it sent to?"),
            ));
        }
    } else {
        for (key, span) in [
            ("path", rotation.path.as_ref().map(|p| p.span())),
            ("instance", rotation.instance.as_ref().map(|p| p.span())),
        ] {
            if let Some(span) = span {
                out.push((
                    span.start,
                    format!("{table} takes no `{key}`: it applies to each instance's logs; list other files in [[logs]]"),
                ));
            }
        }
    }
    if let (Some(size), Some(f)) = (&rotation.size, rotation.frequency) {
        out.push((
            size.span().start,
            format!(
                "{table} has both `size` and `frequency = \"{}\"`: write one (`minsize`/`maxsize` combine a size with a frequency)",
                f.as_str()
            ),
        ));
    }
    if let (Some(true), Some(create)) = (rotation.copytruncate, &rotation.create) {
        if *create.get_ref() != Create::No {
            out.push((
                create.span().start,
                format!("{table} has both `copytruncate` and `create`: copytruncate keeps the file, so there is nothing to create"),
            ));
        }
    }
    if let (Some(a), Some(b)) = (rotation.ifempty, rotation.notifempty) {
        if a == b {
            out.push((
                anchor,
                format!("{table} has `ifempty = {a}` and `notifempty = {b}`, which contradict; write one"),
            ));
        }
    }
    out
}

/// Every rotation problem of a config: its `[[logs]]` entries, `[log_rotation]` and
/// each instance's override, as (byte offset in `text`, message).
pub fn problems(config: &crate::config::Config, text: &str) -> Vec<Problem> {
    let doc = toml_edit::ImDocument::parse(text).ok();
    let table_start = |path: &[&str]| -> Option<usize> {
        let mut item = doc.as_ref()?.as_item();
        for key in path {
            item = item.get(key)?;
        }
        item.as_table_like()
            .and_then(|t| t.iter().next().map(|(k, _)| k))
            .and_then(|k| item.as_table_like()?.key(k)?.span())
            .map(|s| s.start)
    };
    let logs_entry_start = |i: usize| -> Option<usize> {
        let entry = doc.as_ref()?.get("logs")?.as_array_of_tables()?.get(i)?;
        entry.span().map(|s| s.start).or_else(|| {
            let (k, _) = entry.iter().next()?;
            entry.key(k)?.span().map(|s| s.start)
        })
    };
    let instances = config.instance_names();
    let mut out = Vec::new();
    for (i, entry) in config.logs.iter().enumerate() {
        out.extend(validate(
            entry,
            "[[logs]]",
            true,
            logs_entry_start(i).unwrap_or(0),
            &instances,
        ));
    }
    if let Some(r) = &config.log_rotation {
        out.extend(validate(
            r,
            "[log_rotation]",
            false,
            table_start(&["log_rotation"]).unwrap_or(0),
            &instances,
        ));
    }
    for (name, inst) in &config.instances {
        if let Some(r) = &inst.log_rotation {
            let table = format!("[instances.{name}.log_rotation]");
            let anchor = table_start(&["instances", name, "log_rotation"]).unwrap_or(0);
            out.extend(validate(r, &table, false, anchor, &instances));
        }
    }
    out
}
