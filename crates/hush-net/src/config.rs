//! Configuration files and key files.
//!
//! One TOML file can configure a proxy, a gateway, or both (for a trial on one machine):
//!
//! ```toml
//! version = 1                          # optional: the file format (another is refused)
//! [shape]                              # how this end shapes what it sends
//! policy = "pad"                       # pad (independent link padding) | immediate (cover only)
//! [shape.schedule]
//! kind = "random"                      # constant | random | on-off | adaptive | unshaped
//! gap_s = "uniform:0.2,0.4"
//! size_bytes = "uniform:50,200"
//! [shape.budget]
//! max_bps = 2000                       # optional caps
//!
//! [proxy]
//! gateway = "gateway.example.net:7443"
//! gateway_public_key = "base64 public key of the gateway"
//! key_file = "device.key"              # relative to this file; mode 0600 (others: a warning)
//! socks = "127.0.0.1:1080"
//! # insecure_seed = 42                 # reproduction only: a predictable schedule (default:
//! #                                    # 256 bits from the OS per tunnel, never logged)
//! [[proxy.forward]]
//! listen = "127.0.0.1:8883"
//! target = "broker.example.com:8883"
//! [proxy.limits]                       # optional, as [gateway.limits]: stream windows,
//! reconnect_max_s = 30                 # timeouts, reconnection
//!
//! [gateway]
//! listen = "0.0.0.0:7443"
//! key_file = "gateway.key"
//! [gateway.targets]                    # where streams may connect (see hush_net::policy)
//! public = true                        # public addresses, any port (default)
//! allow = ["192.168.1.20/32:1883"]     # loopback, link-local, private, multicast: only if listed
//! [gateway.limits]                     # every field optional; the defaults are shown
//! stream_window_bytes = 262144         # credit per stream: what a stalled stream may buffer
//! tunnel_buffer_bytes = 67108864       # all streams of one tunnel together
//! max_streams_per_tunnel = 1024
//! max_tunnels = 256
//! max_handshakes_in_flight = 64
//! handshakes_per_s_per_source = 2.0    # new connections from one address, on average
//! handshake_burst_per_source = 20      # ... and in a burst
//! handshake_timeout_s = 10.0           # handshake and first record
//! idle_timeout_s = 120.0               # no record from the peer for this long: closed
//! keepalive_s = 25.0                   # an empty message after this long without a record
//! reconnect_max_s = 30.0               # (proxy) longest wait between reconnect attempts
//! reconnect_wait_s = 10.0              # (proxy) how long a new connection waits for a tunnel
//! [[gateway.device]]
//! name = "sleep-monitor"
//! public_key = "base64 public key of the device"
//! [gateway.device.shape.schedule]      # optional: this device's downstream schedule
//! kind = "constant"
//! gap_s = 0.05
//! size_bytes = 150
//! ```

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hush_shape::{Keypair, PublicKey, ShapeConfig};
use serde::Deserialize;

use crate::gateway::{Device, GatewaySettings};
use crate::policy::TargetPolicy;
use crate::proxy::{Forward, ProxySettings};
use crate::{Limits, NetError};

/// The configuration file format this hush reads (`version = 1` at the top, or nothing).
pub const CONFIG_VERSION: u32 = 1;

/// A whole configuration file.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// The file format's version: [`CONFIG_VERSION`] when given (a file without it is read as
    /// this version; another is refused).
    pub version: Option<u32>,
    /// Shaping of what this end sends.
    pub shape: Option<ShapeConfig>,
    /// Proxy section.
    pub proxy: Option<ProxyToml>,
    /// Gateway section.
    pub gateway: Option<GatewayToml>,
}

/// `[proxy]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyToml {
    /// `host:port` of the gateway.
    pub gateway: Option<String>,
    /// The gateway's public key.
    pub gateway_public_key: Option<String>,
    /// Our private key file.
    pub key_file: Option<PathBuf>,
    /// SOCKS5 listen address.
    pub socks: Option<SocketAddr>,
    /// A reproducible schedule seed: for reproduction only.
    pub insecure_seed: Option<u64>,
    /// Fixed forwards.
    #[serde(default)]
    pub forward: Vec<ForwardToml>,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
}

/// `[[proxy.forward]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardToml {
    /// Local listen address.
    pub listen: SocketAddr,
    /// `host:port` to reach through the gateway.
    pub target: String,
}

/// `[gateway]`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayToml {
    /// Listen address.
    pub listen: Option<SocketAddr>,
    /// Our private key file.
    pub key_file: Option<PathBuf>,
    /// Accept any device key.
    #[serde(default)]
    pub allow_any_device: bool,
    /// A reproducible base schedule seed: for reproduction only.
    pub insecure_seed: Option<u64>,
    /// Devices.
    #[serde(default)]
    pub device: Vec<DeviceToml>,
    /// Where streams may connect.
    #[serde(default)]
    pub targets: TargetPolicy,
    /// Limits.
    #[serde(default)]
    pub limits: Limits,
}

/// `[[gateway.device]]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceToml {
    /// For logs.
    pub name: String,
    /// Its public key.
    pub public_key: String,
    /// Its downstream shaping.
    pub shape: Option<ShapeConfig>,
}

impl ConfigFile {
    /// Read and parse a file; errors name the file and the line.
    pub fn read(path: &Path) -> Result<ConfigFile, NetError> {
        let text = fs::read_to_string(path).map_err(|source| NetError::File {
            path: path.to_path_buf(),
            source,
        })?;
        let mut file: ConfigFile = toml::from_str(&text).map_err(|e| {
            NetError::Config(format!("{}: {}", path.display(), e.to_string().trim()))
        })?;
        if let Some(v) = file.version.filter(|&v| v != CONFIG_VERSION) {
            return Err(NetError::Config(format!(
                "{}: configuration file version {v} is not supported (this hush reads version \
                 {CONFIG_VERSION})",
                path.display()
            )));
        }
        // Key files are relative to the configuration file.
        let dir = path.parent().unwrap_or(Path::new("."));
        let fix = |p: &mut Option<PathBuf>| {
            if let Some(k) = p {
                if k.is_relative() {
                    *k = dir.join(&*k);
                }
            }
        };
        if let Some(p) = &mut file.proxy {
            fix(&mut p.key_file);
        }
        if let Some(g) = &mut file.gateway {
            fix(&mut g.key_file);
        }
        Ok(file)
    }
}

fn required<T>(v: Option<T>, what: &str) -> Result<T, NetError> {
    v.ok_or_else(|| {
        NetError::Config(format!(
            "missing {what} (in the configuration file or as a flag)"
        ))
    })
}

fn public_key(text: &str, what: &str) -> Result<PublicKey, NetError> {
    text.parse()
        .map_err(|e| NetError::Config(format!("{what}: {e}")))
}

/// Parse a forward given as `LISTEN=TARGET` (`127.0.0.1:8883=broker.example.com:8883`).
pub fn parse_forward(s: &str) -> Result<Forward, NetError> {
    let bad = || {
        NetError::Config(format!(
            "forward {s:?}: expected LISTEN=HOST:PORT, e.g. 127.0.0.1:8883=broker.example.com:8883"
        ))
    };
    let (listen, target) = s.split_once('=').ok_or_else(bad)?;
    let listen: SocketAddr = listen.trim().parse().map_err(|_| bad())?;
    let target = target.trim();
    if target
        .rsplit_once(':')
        .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
    {
        return Err(bad());
    }
    Ok(Forward {
        listen,
        target: target.to_string(),
    })
}

impl ProxyToml {
    /// Validated settings, and warnings for the log (a key file others can read). `shape` is
    /// the file's `[shape]` (or a flag's); `seed` a reproducible seed, if any.
    pub fn settings(
        self,
        shape: ShapeConfig,
        seed: Option<u64>,
    ) -> Result<(ProxySettings, Vec<String>), NetError> {
        let key_file = required(self.key_file, "proxy key_file")?;
        let key = read_key_file(&key_file)?;
        let warnings = key_file_warning(&key_file).into_iter().collect();
        let gateway_key = public_key(
            &required(self.gateway_public_key, "proxy gateway_public_key")?,
            "gateway_public_key",
        )?;
        shape.validate()?;
        self.limits.validate()?;
        let settings = ProxySettings {
            gateway: required(self.gateway, "proxy gateway address")?,
            gateway_key,
            key,
            socks: self.socks,
            forwards: self
                .forward
                .into_iter()
                .map(|f| Forward {
                    listen: f.listen,
                    target: f.target,
                })
                .collect(),
            shape,
            seed,
            limits: self.limits,
        };
        Ok((settings, warnings))
    }
}

impl GatewayToml {
    /// Validated settings, and warnings for the log (a key file others can read).
    pub fn settings(
        self,
        shape: ShapeConfig,
        seed: Option<u64>,
    ) -> Result<(GatewaySettings, Vec<String>), NetError> {
        let key_file = required(self.key_file, "gateway key_file")?;
        let key = read_key_file(&key_file)?;
        let warnings = key_file_warning(&key_file).into_iter().collect();
        let devices = self
            .device
            .into_iter()
            .map(|d| {
                Ok(Device {
                    key: public_key(&d.public_key, &format!("device {}", d.name))?,
                    name: d.name,
                    shape: d.shape,
                })
            })
            .collect::<Result<Vec<_>, NetError>>()?;
        shape.validate()?;
        self.limits.validate()?;
        let settings = GatewaySettings {
            listen: required(self.listen, "gateway listen address")?,
            key,
            devices,
            allow_any: self.allow_any_device,
            shape,
            seed,
            targets: self.targets,
            limits: self.limits,
        };
        Ok((settings, warnings))
    }
}

/// A warning if others than the owner may read or write a private key file (it should be 0600,
/// as `hush keygen` writes it).
pub fn key_file_warning(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then(|| {
            format!(
                "warning: private key file {} has mode {mode:04o}: others can read it; run `chmod 600 {}`",
                path.display(),
                path.display()
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Read a private key file (base64, `#` comments allowed).
pub fn read_key_file(path: &Path) -> Result<Keypair, NetError> {
    let text = fs::read_to_string(path).map_err(|source| NetError::File {
        path: path.to_path_buf(),
        source,
    })?;
    let text = zeroize::Zeroizing::new(text);
    Keypair::from_text(&text).map_err(|e| NetError::Config(format!("{}: {e}", path.display())))
}

/// Write a new private key file readable only by its owner; refuses to overwrite.
pub fn write_key_file(path: &Path, key: &Keypair) -> Result<(), NetError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(|source| NetError::File {
        path: path.to_path_buf(),
        source,
    })?;
    f.write_all(key.to_text().as_bytes())
        .map_err(|source| NetError::File {
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let doc = include_str!("config.rs");
        let start = doc.find("//! ```toml\n").unwrap() + 12;
        let end = doc[start..].find("//! ```").unwrap() + start;
        let text: String = doc[start..end]
            .lines()
            .map(|l| {
                l.strip_prefix("//! ")
                    .or_else(|| l.strip_prefix("//!"))
                    .unwrap_or(l)
            })
            .collect::<Vec<_>>()
            .join("\n");
        let file: ConfigFile = toml::from_str(&text).unwrap();
        let proxy = file.proxy.unwrap();
        assert_eq!(proxy.forward.len(), 1);
        assert_eq!(file.gateway.as_ref().unwrap().device.len(), 1);
        assert_eq!(file.shape.unwrap().budget.max_bps, Some(2000.0));
        let gateway = file.gateway.unwrap();
        assert_eq!(
            gateway.limits,
            Limits::default(),
            "the documented defaults are the defaults"
        );
        assert_eq!(gateway.targets.allow.len(), 1);
    }

    #[test]
    fn another_version_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hush.toml");
        std::fs::write(&path, "version = 1\n[proxy]\n").unwrap();
        assert!(ConfigFile::read(&path).is_ok());
        std::fs::write(&path, "version = 7\n[proxy]\n").unwrap();
        let err = ConfigFile::read(&path).unwrap_err().to_string();
        assert!(err.contains("version 7 is not supported"), "{err}");
        assert!(err.contains("hush.toml"), "{err}");
    }

    #[test]
    fn typos_are_named() {
        let err = toml::from_str::<ConfigFile>("[proxy]\ngatway = \"x:1\"\n").unwrap_err();
        assert!(err.to_string().contains("gatway"), "{err}");
    }

    #[test]
    fn forwards_parse() {
        let f = parse_forward("127.0.0.1:8883=broker.example.com:8883").unwrap();
        assert_eq!(f.target, "broker.example.com:8883");
        for bad in [
            "127.0.0.1:80",
            "x=y:1",
            "127.0.0.1:1=host",
            "127.0.0.1:1=:80",
        ] {
            assert!(parse_forward(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn key_files_are_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let key = crate::generate_keypair().unwrap();
        write_key_file(&path, &key).unwrap();
        assert_eq!(key_file_warning(&path), None);
        assert_eq!(read_key_file(&path).unwrap().public(), key.public());
        assert!(write_key_file(&path, &key).is_err());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
            let w = key_file_warning(&path).unwrap();
            assert!(w.contains("0644") && w.contains("k.key"), "{w}");
        }
    }
}
