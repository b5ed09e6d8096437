//! `hush keygen`, `hush pubkey`, `hush proxy`, `hush gateway`: thin glue over hush-net.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;
use hush_net::config::{
    ConfigFile, GatewayToml, ProxyToml, key_file_warning, parse_forward, read_key_file,
    write_key_file,
};
use hush_net::gateway::{Device, Gateway};
use hush_net::policy::AllowRule;
use hush_net::proxy::{Log, Proxy};

use crate::BadInput;
use crate::shape::ShapeArgs;

/// `hush keygen`.
#[derive(Args)]
pub struct KeygenArgs {
    /// Where to write the private key (created with mode 0600; never overwritten).
    #[arg(long, short, value_name = "FILE")]
    pub out: PathBuf,
}

/// `hush pubkey`.
#[derive(Args)]
pub struct PubkeyArgs {
    /// A private key file.
    pub key: PathBuf,
}

/// `hush proxy`.
#[derive(Args)]
pub struct ProxyArgs {
    /// TOML configuration with [proxy] and [shape] sections; flags override it.
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The gateway, HOST:PORT.
    #[arg(long, value_name = "HOST:PORT")]
    pub gateway: Option<String>,
    /// The gateway's public key (base64, from `hush pubkey`).
    #[arg(long, value_name = "KEY")]
    pub gateway_key: Option<String>,
    /// Our private key file (from `hush keygen`).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Listen for SOCKS5 clients here.
    #[arg(long, value_name = "ADDR")]
    pub socks: Option<std::net::SocketAddr>,
    /// Forward LISTEN=HOST:PORT through the tunnel (repeatable).
    #[arg(long, value_name = "LISTEN=HOST:PORT")]
    pub forward: Vec<String>,
    /// Reproducible schedule seed, for reproducing a run only: anyone who knows it can predict
    /// the schedule (default: 256 bits from the OS per tunnel, never printed).
    #[arg(long = "insecure-seed", alias = "seed", value_name = "N")]
    pub insecure_seed: Option<u64>,
    #[command(flatten)]
    pub shape: ShapeArgs,
}

/// `hush gateway`.
#[derive(Args)]
pub struct GatewayArgs {
    /// TOML configuration with [gateway] and [shape] sections; flags override it.
    #[arg(long, short, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Listen for tunnels here.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Our private key file.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// Allow a device: KEY or NAME=KEY (repeatable).
    #[arg(long, value_name = "[NAME=]KEY")]
    pub allow: Vec<String>,
    /// Accept any device key (trials only).
    #[arg(long)]
    pub allow_any_device: bool,
    /// Let streams reach CIDR[:PORT[-PORT]] even if it is loopback, private, link-local or
    /// multicast, which are refused by default (repeatable).
    #[arg(long, value_name = "CIDR[:PORTS]")]
    pub allow_target: Vec<String>,
    /// Reproducible base schedule seed, for reproducing a run only: anyone who knows it can
    /// predict the schedules (default: 256 bits from the OS per tunnel, never printed).
    #[arg(long = "insecure-seed", alias = "seed", value_name = "N")]
    pub insecure_seed: Option<u64>,
    #[command(flatten)]
    pub shape: ShapeArgs,
}

pub fn keygen(args: &KeygenArgs) -> Result<()> {
    let key = hush_net::generate_keypair()?;
    write_key_file(&args.out, &key)?;
    println!("{}", key.public());
    eprintln!(
        "hush: private key written to {}; the line above is its public key",
        args.out.display()
    );
    Ok(())
}

pub fn pubkey(args: &PubkeyArgs) -> Result<()> {
    let key = read_key_file(&args.key)?;
    if let Some(w) = key_file_warning(&args.key) {
        eprintln!("hush: {w}");
    }
    println!("{}", key.public());
    Ok(())
}

fn log(prefix: &'static str) -> Log {
    Arc::new(move |line: &str| eprintln!("hush {prefix}: {line}"))
}

fn read_config(path: &Option<PathBuf>) -> Result<ConfigFile> {
    match path {
        Some(p) => Ok(ConfigFile::read(p)?),
        None => Ok(ConfigFile::default()),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// The reproducible seed, if the user asked for one, said loudly: a known seed makes the
/// schedule predictable.
fn insecure_seed(flag: Option<u64>, file: Option<u64>, log: &Log) -> Option<u64> {
    let seed = flag.or(file);
    if let Some(s) = seed {
        log(&format!(
            "WARNING: insecure seed {s}: the traffic schedule is reproducible and predictable by \
             anyone who knows the seed; use it to reproduce a run, never to protect a device"
        ));
    }
    seed
}

pub fn proxy(args: &ProxyArgs) -> Result<()> {
    let file = read_config(&args.config)?;
    let mut toml = file.proxy.unwrap_or_default();
    let shape = args.shape.config(file.shape)?;
    if args.gateway.is_some() {
        toml.gateway.clone_from(&args.gateway);
    }
    if args.gateway_key.is_some() {
        toml.gateway_public_key.clone_from(&args.gateway_key);
    }
    if args.key.is_some() {
        toml.key_file.clone_from(&args.key);
    }
    if args.socks.is_some() {
        toml.socks = args.socks;
    }
    let log = log("proxy");
    let extra: Vec<_> = args
        .forward
        .iter()
        .map(|f| parse_forward(f))
        .collect::<Result<_, _>>()
        .map_err(|e| BadInput(e.to_string()))?;
    let file_seed = toml.insecure_seed;
    let (mut settings, warnings) =
        ProxyToml::settings(toml, shape, None).map_err(|e| BadInput(e.to_string()))?;
    settings.seed = insecure_seed(args.insecure_seed, file_seed, &log);
    settings.forwards.extend(extra);
    for w in warnings {
        log(&w);
    }
    runtime()?.block_on(async {
        let proxy = Proxy::bind(settings, Arc::clone(&log)).await?;
        if let Some(a) = proxy.socks_addr() {
            log(&format!("SOCKS5 on {a}"));
        }
        for a in proxy.forward_addrs() {
            log(&format!("forwarding {a}"));
        }
        let report = proxy.run(shutdown_signal()).await?;
        log(&format!(
            "done: {} streams, {} B up, {} B down; tunnel sent {} records, {} wire bytes for {} real; {} reconnects, {} B unconfirmed",
            report.streams,
            report.bytes_to_tunnel,
            report.bytes_from_tunnel,
            report.tunnel.records,
            report.tunnel.wire_bytes,
            report.tunnel.real_bytes,
            report.reconnects,
            report.bytes_unconfirmed
        ));
        Ok::<(), hush_net::NetError>(())
    })?;
    Ok(())
}

pub fn gateway(args: &GatewayArgs) -> Result<()> {
    let file = read_config(&args.config)?;
    let mut toml: GatewayToml = file.gateway.unwrap_or_default();
    let shape = args.shape.config(file.shape)?;
    if args.listen.is_some() {
        toml.listen = args.listen;
    }
    if args.key.is_some() {
        toml.key_file.clone_from(&args.key);
    }
    toml.allow_any_device |= args.allow_any_device;
    for t in &args.allow_target {
        let rule: AllowRule = t
            .parse()
            .map_err(|e| BadInput(format!("--allow-target: {e}")))?;
        toml.targets.allow.push(rule);
    }
    let log = log("gateway");
    let file_seed = toml.insecure_seed;
    let (mut settings, warnings) =
        GatewayToml::settings(toml, shape, None).map_err(|e| BadInput(e.to_string()))?;
    settings.seed = insecure_seed(args.insecure_seed, file_seed, &log);
    for w in warnings {
        log(&w);
    }
    for (i, a) in args.allow.iter().enumerate() {
        let (name, key) = match a.split_once('=') {
            // Base64 ends in '=', so only a split before the last 44 characters is a name.
            Some((n, k)) if k.len() >= 43 => (n.to_string(), k),
            _ => (format!("device{}", i + 1), a.as_str()),
        };
        let key = key
            .parse()
            .map_err(|e| BadInput(format!("--allow {a:?}: {e}")))?;
        settings.devices.push(Device {
            name,
            key,
            shape: None,
        });
    }
    let targets = match settings.targets.allow.len() {
        0 => String::from("public addresses only"),
        n => format!("public addresses and {n} allow rules"),
    };
    let targets = if settings.targets.public {
        targets
    } else {
        format!("{} allow rules only", settings.targets.allow.len())
    };
    runtime()?.block_on(async {
        let gw = Gateway::bind(settings, Arc::clone(&log)).await?;
        log(&format!(
            "listening on {} (targets: {targets})",
            gw.local_addr()?
        ));
        let report = gw.run(shutdown_signal()).await?;
        log(&format!(
            "done: {} tunnels, {} streams, {} denied targets, {} connections dropped unanswered",
            report.tunnels, report.streams, report.denied, report.dropped
        ));
        Ok::<(), hush_net::NetError>(())
    })?;
    Ok(())
}
