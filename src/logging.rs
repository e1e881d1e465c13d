//! Where `burrow serve` writes, and in which form: `--log-format text` (for people) or
//! `json` (one object per line, for collectors), for every line it writes.

use tracing_subscriber::filter::{EnvFilter, FilterFn};
use tracing_subscriber::layer::{Layer, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{Registry, fmt};

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines; the start-up lines are bare text.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields.message`, `target`, and the
    /// request's span with its `id` on lines written while answering a request).
    Json,
}

/// The target of the lines for whoever started the server, on stdout: its address first
/// (`listening on http://ADDR`, which supervisors and the test kit wait for).
const ANNOUNCE: &str = "burrow::announce";
/// The target of the reason the server will not start, on stderr, before it exits.
const REFUSE: &str = "burrow::refuse";

/// Writes a start-up line to stdout (bare text, or a JSON line carrying the same text).
pub fn announce(text: &str) {
    tracing::info!(target: ANNOUNCE, "{text}");
}

/// Writes why the server will not start to stderr (bare text, or a JSON line).
pub fn refuse(text: &str) {
    tracing::error!(target: REFUSE, "{text}");
}

/// Installs the subscriber: start-up lines to stdout and refusals to stderr whatever
/// `RUST_LOG` says (a supervisor needs them); everything else to stderr as `RUST_LOG` filters
/// it (default `info`).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let only = |target: &'static str| FilterFn::new(move |m| m.target() == target);
    let layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = vec![
        bare_or_json(format, std::io::stdout)
            .with_filter(only(ANNOUNCE))
            .boxed(),
        bare_or_json(format, std::io::stderr)
            .with_filter(only(REFUSE))
            .boxed(),
        logged(format, ansi)
            .with_filter(FilterFn::new(|m| !matches!(m.target(), ANNOUNCE | REFUSE)))
            .with_filter(filter)
            .boxed(),
    ];
    tracing_subscriber::registry().with(layers).init();
    if format == LogFormat::Json {
        // The default hook writes plain text to stderr; this one writes a JSON line, inside
        // the span of the request (if any) whose handler panicked.
        std::panic::set_hook(Box::new(|info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("a panic without a message");
            let location = info.location().map(ToString::to_string);
            tracing::error!(panic = message, location, "panicked");
        }));
    }
}

/// A layer writing the message alone (text) or a JSON line.
fn bare_or_json<W>(format: LogFormat, writer: W) -> Box<dyn Layer<Registry> + Send + Sync>
where
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    // A log that cannot be written (a full disk, a closed pipe) must not take requests down:
    // by default the subscriber reports that with eprintln!, which panics then.
    let layer = fmt::layer().with_writer(writer).log_internal_errors(false);
    match format {
        LogFormat::Text => layer
            .without_time()
            .with_level(false)
            .with_target(false)
            .with_ansi(false)
            .boxed(),
        LogFormat::Json => layer.json().boxed(),
    }
}

/// The layer of everything else, on stderr.
fn logged(format: LogFormat, ansi: bool) -> Box<dyn Layer<Registry> + Send + Sync> {
    let layer = fmt::layer()
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    match format {
        LogFormat::Text => layer.with_ansi(ansi).boxed(),
        LogFormat::Json => layer.json().boxed(),
    }
}
