//! `loopcast score --prometheus URL --query CHANNEL=PROMQL …` and `--remote-write URL`:
//! series read from Prometheus into a snapshot file that the score job reads (and a
//! resumed run reads again, so every chunk comes from the same data), and forecasts
//! written back through remote write.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::Args;
use loopcast_core::{ChannelMapping, Role};
use loopcast_data::Layout;
use loopcast_prom::{Auth, ChannelQuery, PromError, PrometheusSource, Window};
use serde::{Deserialize, Serialize};

use crate::local::write_atomically;

/// Where Prometheus is and what to read from it.
#[derive(Debug, Args)]
pub(crate) struct PrometheusArgs {
    /// Read the series from this Prometheus server (`http://HOST:9090`) instead of a file.
    #[arg(long, value_name = "URL", requires_all = ["queries", "range", "step"])]
    pub(crate) prometheus: Option<String>,
    /// `CHANNEL=PROMQL`, once per channel: every result series of the query is that
    /// channel of the series its labels name. Roles come from --mapping (target when
    /// unnamed).
    #[arg(long = "query", value_name = "CHANNEL=PROMQL", requires = "prometheus")]
    queries: Vec<String>,
    /// How far back to read (`7d`, `36h`).
    #[arg(long, requires = "prometheus")]
    range: Option<String>,
    /// The grid step and the queries' resolution (`5m`, `30s`).
    #[arg(long, requires = "prometheus")]
    step: Option<String>,
    /// The end of the range, RFC 3339 [default: now].
    #[arg(long, value_name = "RFC3339", requires = "prometheus")]
    end: Option<String>,
    /// The labels whose values name a series, comma-separated [default: every label of
    /// a result but `__name__`].
    #[arg(long, value_delimiter = ',', requires = "prometheus")]
    series_labels: Option<Vec<String>>,
    /// Seconds to wait for each answer of Prometheus (queries and remote write).
    #[arg(long, default_value_t = 30.0)]
    prometheus_timeout: f64,
    /// A file holding a bearer token for Prometheus (queries and remote write).
    #[arg(long, value_name = "FILE", conflicts_with = "prometheus_user")]
    prometheus_token_file: Option<PathBuf>,
    /// A user for HTTP basic authentication, with --prometheus-password-file.
    #[arg(long, requires = "prometheus_password_file")]
    prometheus_user: Option<String>,
    /// A file holding the basic-authentication password.
    #[arg(long, value_name = "FILE", requires = "prometheus_user")]
    prometheus_password_file: Option<PathBuf>,
}

/// The file a snapshot is kept in, and the record of what it holds, in a score's work
/// directory.
const SNAPSHOT: &str = "prometheus.parquet";
const RECORD: &str = "prometheus.json";

/// What a snapshot holds: the source as asked and the window it resolved to.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    source: PrometheusSource,
    window: Window,
}

impl PrometheusArgs {
    /// The credentials, read from their files.
    pub(crate) fn auth(&self) -> Result<Auth> {
        let read = |path: &Path, what: &str| -> Result<String> {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("{}: cannot read the {what}", path.display()))?;
            Ok(text.trim_end_matches(['\n', '\r']).to_string())
        };
        Ok(match (&self.prometheus_token_file, &self.prometheus_user, &self.prometheus_password_file) {
            (Some(token), _, _) => Auth::Bearer(read(token, "bearer token")?),
            (None, Some(user), Some(password)) => {
                Auth::Basic { user: user.clone(), password: read(password, "password")? }
            }
            _ => Auth::None,
        })
    }

    /// The remote-write timeout.
    pub(crate) fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.prometheus_timeout.clamp(0.001, 1e6))
    }

    /// The source the flags describe, roles from `mapping`.
    fn source(&self, url: &str, mapping: Option<&ChannelMapping>) -> Result<PrometheusSource> {
        let queries = self
            .queries
            .iter()
            .map(|text| {
                let Some((channel, query)) = text.split_once('=') else {
                    bail!(crate::UsageError(format!("--query `{text}`: expected CHANNEL=PROMQL")));
                };
                let channel = channel.trim().to_string();
                let role = mapping.and_then(|m| m.spec(&channel)).map_or(Role::Target, |spec| spec.role);
                Ok(ChannelQuery { channel, query: query.trim().to_string(), role })
            })
            .collect::<Result<_>>()?;
        Ok(PrometheusSource {
            url: url.to_string(),
            queries,
            range: self.range.clone().unwrap_or_default(),
            step: self.step.clone().unwrap_or_default(),
            end: self.end.clone(),
            series_labels: self.series_labels.clone(),
            timeout_seconds: self.prometheus_timeout,
        })
    }
}

/// What a command reads: the file it was given (with its layout and mapping), or the
/// snapshot of the Prometheus queries it was given, taken into `work_dir` (long, the
/// mapping's roles already in its `role` column, every channel a query fills).
pub(crate) async fn input(
    file: Option<&Path>,
    layout: Layout,
    source: &PrometheusArgs,
    mapping: Option<ChannelMapping>,
    work_dir: &Path,
) -> Result<(PathBuf, Layout, Option<ChannelMapping>)> {
    match (file, &source.prometheus) {
        (Some(file), _) => Ok((file.to_path_buf(), layout, mapping)),
        (None, Some(url)) => {
            let snapshot = snapshot(source, url, mapping.as_ref(), work_dir, chrono::Utc::now()).await?;
            Ok((snapshot, Layout::Long, None))
        }
        (None, None) => bail!(crate::UsageError("give a telemetry file or --prometheus".into())),
    }
}

/// Reads the series the flags ask for into `work_dir`, or finds them there from the run
/// being resumed; returns the snapshot's path.
async fn snapshot(
    args: &PrometheusArgs,
    url: &str,
    mapping: Option<&ChannelMapping>,
    work_dir: &Path,
    now: DateTime<Utc>,
) -> Result<PathBuf> {
    let source = args.source(url, mapping)?;
    let (data, record_path) = (work_dir.join(SNAPSHOT), work_dir.join(RECORD));
    if let Ok(text) = std::fs::read_to_string(&record_path)
        && data.exists()
    {
        let record: Record = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a snapshot record", record_path.display()))?;
        if record.source != source {
            bail!(PromError::Invalid {
                field: "prometheus".into(),
                detail: format!(
                    "{} holds a snapshot of other queries or settings; remove the directory to start over",
                    work_dir.display()
                ),
            });
        }
        eprintln!("loopcast: resuming on the Prometheus snapshot of {}", record.window.describe());
        return Ok(data);
    }
    let fetched = loopcast_prom::fetch(&source, &args.auth()?, now).await?;
    std::fs::create_dir_all(work_dir).with_context(|| format!("cannot create {}", work_dir.display()))?;
    loopcast_data::write_long_parquet(&data, &fetched.series)?;
    let record = Record { source, window: fetched.window };
    write_atomically(&record_path, serde_json::to_string_pretty(&record)?.as_bytes())?;
    eprintln!(
        "loopcast: read {} series from {url} ({}): {} samples in {} requests{}",
        fetched.series.len(),
        fetched.window.describe(),
        fetched.samples,
        fetched.requests,
        if fetched.non_finite > 0 {
            format!(", {} NaN or infinite samples left unobserved", fetched.non_finite)
        } else {
            String::new()
        }
    );
    Ok(data)
}

/// Writes the quantiles of the forecast file `output` to the remote-write receiver `url`.
pub(crate) async fn write_back(args: &PrometheusArgs, url: &str, output: &Path) -> Result<()> {
    let series = loopcast_prom::forecast_series(output)?;
    let written = loopcast_prom::remote_write(url, &args.auth()?, args.timeout(), series).await?;
    eprintln!(
        "loopcast: wrote {} series ({} samples) to {url} in {} requests",
        written.series, written.samples, written.requests
    );
    Ok(())
}
