//! `loopcast serve`: the forecasting service on the shipped model (or `--model`), until
//! Ctrl-C or SIGTERM, then a graceful drain of the requests in flight.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use loopcast_model::DeviceKind;
use loopcast_serve::ServeConfig;

use crate::models;

/// Arguments of `loopcast serve`; each overrides the config file and `LOOPCAST_*`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Configuration file (`configs/loopcast.toml` lists every key with its default).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// A model directory (`config.json` + `weights.bpk`); the embedded shipped model when
    /// absent.
    #[arg(long)]
    model: Option<PathBuf>,
    /// `cpu` (burn flex) or `wgpu` (Vulkan, Metal, DX12).
    #[arg(long)]
    device: Option<String>,
    /// Directory of batch-job inputs, uploads, job state and outputs [default:
    /// loopcast-data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// One model call per request instead of dynamic batching.
    #[arg(long)]
    no_batching: bool,
}

/// Runs `loopcast serve`.
pub(crate) async fn run(args: ServeArgs) -> Result<()> {
    let mut config = match &args.config {
        Some(path) => ServeConfig::from_file(path)?,
        None => ServeConfig::default(),
    };
    config.apply_env(|name| std::env::var(name).ok())?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    if let Some(model) = args.model {
        config.model = Some(model);
    }
    if let Some(device) = args.device {
        config.device = device;
    }
    if let Some(dir) = args.data_dir {
        config.jobs.data_dir = dir;
    }
    if args.no_batching {
        config.batching.enabled = false;
    }
    config.validate()?;
    let device = config.device.parse::<DeviceKind>()?.device()?;
    let (model, name, source) = models::load(config.model.as_deref(), &device)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, model = %name, %source, device = %config.device, "serving");
    eprintln!(
        "loopcast: serving {name} ({source}, {}) on http://{address} (console: http://{address}/, API: http://{address}/openapi.json)",
        config.device
    );
    loopcast_serve::serve(listener, &config, model, name, shutdown()).await?;
    eprintln!("loopcast: stopped after draining the requests in flight");
    Ok(())
}

/// Completes on Ctrl-C or SIGTERM (what Kubernetes sends before it kills a pod).
async fn shutdown() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}
