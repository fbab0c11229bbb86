//! Process logging: a `tracing` subscriber writing text or JSON lines to stderr, filtered by the
//! `ONEX_LOG` environment variable.
//!
//! `ONEX_LOG` takes [`Targets`] directives: a bare level (`info`), `target=level` pairs
//! (`onex_infra=debug`), or both, comma-separated (`onex_infra=debug,warn`). As with
//! `RUST_LOG`, targets not named and no bare level given are off. Unset or empty means `info`.

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::{SubscriberInitExt, TryInitError};

/// The environment variable holding the log filter.
pub const LOG_ENV: &str = "ONEX_LOG";

/// The filter used when `ONEX_LOG` is unset or empty.
pub const DEFAULT_FILTER: &str = "info";

/// How log lines are written to stderr (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, coloured when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// `ONEX_LOG` does not parse as a filter.
    #[error(
        "invalid {LOG_ENV} value `{value}`: {reason}; expected a level (`info`) or comma-separated \
         `target=level` directives (`onex_infra=debug,info`)"
    )]
    BadFilter {
        /// The value given.
        value: String,
        /// The parser's description.
        reason: String,
    },
    /// `ONEX_LOG` is set but not valid UTF-8.
    #[error("invalid {LOG_ENV} value: not valid UTF-8")]
    NotUnicode,
    /// A global subscriber was already installed in this process.
    #[error("cannot install the log subscriber: {0}")]
    Install(#[from] TryInitError),
}

/// The filter for an `ONEX_LOG` value (`None` when unset); empty means the default, `info`.
pub fn parse_filter(value: Option<&str>) -> Result<Targets, LoggingError> {
    let value = value.map(str::trim).filter(|v| !v.is_empty()).unwrap_or(DEFAULT_FILTER);
    value.parse().map_err(|e: tracing_subscriber::filter::ParseError| LoggingError::BadFilter {
        value: value.to_owned(),
        reason: e.to_string(),
    })
}

/// The formatting layer for `format`, writing through `writer`; `ansi` colours text output.
fn fmt_layer<S, W>(format: LogFormat, writer: W, ansi: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer().with_writer(writer);
    match format {
        LogFormat::Text => layer.with_ansi(ansi).boxed(),
        LogFormat::Json => layer.json().with_ansi(false).boxed(),
    }
}

/// Installs the process-wide subscriber: `format` lines on stderr, filtered by `ONEX_LOG`.
/// Colours only when stderr is a terminal and `NO_COLOR` is unset or empty.
pub fn init_logging(format: LogFormat) -> Result<(), LoggingError> {
    let filter = match std::env::var(LOG_ENV) {
        Ok(value) => parse_filter(Some(&value))?,
        Err(std::env::VarError::NotPresent) => parse_filter(None)?,
        Err(std::env::VarError::NotUnicode(_)) => return Err(LoggingError::NotUnicode),
    };
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let ansi = std::io::stderr().is_terminal() && !no_color;
    tracing_subscriber::registry().with(fmt_layer(format, std::io::stderr, ansi).with_filter(filter)).try_init()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::Level;

    use super::*;

    #[test]
    fn unset_or_empty_means_info_for_every_target() {
        for value in [None, Some(""), Some("  ")] {
            let filter = parse_filter(value).unwrap();
            assert!(filter.would_enable("onex_infra::cli", &Level::INFO), "{value:?}");
            assert!(filter.would_enable("hyper", &Level::WARN), "{value:?}");
            assert!(!filter.would_enable("onex_infra::cli", &Level::DEBUG), "{value:?}");
        }
    }

    #[test]
    fn directives_set_levels_per_target() {
        let filter = parse_filter(Some("onex_infra=debug,warn")).unwrap();
        assert!(filter.would_enable("onex_infra::cli::send", &Level::DEBUG));
        assert!(!filter.would_enable("onex_infra::cli::send", &Level::TRACE));
        assert!(filter.would_enable("hyper", &Level::WARN));
        assert!(!filter.would_enable("hyper", &Level::INFO));
        // A target alone, no bare level: everything else is off.
        let only = parse_filter(Some("onex_infra=debug")).unwrap();
        assert!(!only.would_enable("hyper", &Level::ERROR));
    }

    #[test]
    fn a_bad_value_names_the_variable_and_the_value() {
        let err = parse_filter(Some("onex_infra=loud")).unwrap_err();
        let message = err.to_string();
        assert!(message.starts_with("invalid ONEX_LOG value `onex_infra=loud`: "), "{message}");
        assert!(message.contains("expected a level (`info`)"), "{message}");
        assert!(parse_filter(Some("a=b=c")).unwrap_err().to_string().contains("ONEX_LOG"));
    }

    /// A `MakeWriter` appending to a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    fn capture(format: LogFormat, filter: &str) -> String {
        let buffer = Buffer::default();
        let layer = fmt_layer(format, buffer.clone(), false).with_filter(parse_filter(Some(filter)).unwrap());
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "onex_infra::test", addr = "127.0.0.1:1", "first event");
            tracing::debug!(target: "onex_infra::test", "debug detail");
            tracing::warn!(target: "other", "second event");
        });
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn json_format_writes_one_object_per_line() {
        let out = capture(LogFormat::Json, "info");
        let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert_eq!(lines[0]["level"], "INFO");
        assert_eq!(lines[0]["target"], "onex_infra::test");
        assert_eq!(lines[0]["fields"]["message"], "first event");
        assert_eq!(lines[0]["fields"]["addr"], "127.0.0.1:1");
        assert_eq!(lines[1]["level"], "WARN");
    }

    #[test]
    fn text_format_is_plain_without_ansi_and_filtered() {
        let out = capture(LogFormat::Text, "onex_infra=debug");
        assert!(!out.contains('\u{1b}'), "{out:?}");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(lines[0].contains("INFO") && lines[0].contains("first event addr=\"127.0.0.1:1\""), "{out}");
        assert!(lines[1].contains("DEBUG") && lines[1].contains("debug detail"), "{out}");
    }
}
