//! The web configuration Prometheus exporters share (exporter-toolkit's
//! format, node_exporter's `--web.config.file`): TLS, client certificates
//! and basic authentication with bcrypt hashes.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt
//!   key_file: server.key
//!   # client_auth_type: RequireAndVerifyClientCert
//!   # client_ca_file: clients-ca.crt
//! basic_auth_users:
//!   prometheus: $2y$10$...   # htpasswd -nBC 10 prometheus
//! ```

use std::{
    collections::{BTreeMap, HashMap},
    io::Read,
    os::unix::fs::{MetadataExt, OpenOptionsExt},
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use base64::Engine as _;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// Why a web configuration, or a file it names, was refused. The cause of
/// an I/O or YAML error is its `source()`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebConfigError {
    /// The file could not be opened (a symlink is not followed).
    #[error("cannot open the {what} file {}", path.display())]
    Open {
        /// What the file is ("web configuration", "private key"...).
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file could not be read.
    #[error("cannot read the {what} file {}", path.display())]
    Read {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Another user could change the file, and so who may connect.
    #[error("refusing the {what} file {}: {reason}, and so change who may connect; {fix}", path.display())]
    Untrusted {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Who could change it.
        reason: String,
        /// What to do.
        fix: String,
    },
    /// Not a regular file, or larger than 1 MiB.
    #[error("the {what} file {} {problem}", path.display())]
    Unfit {
        /// What the file is.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// Not YAML of the web configuration's shape (unknown keys included).
    #[error("{}: not a valid web configuration", path.display())]
    Yaml {
        /// The configuration file.
        path: PathBuf,
        /// The parser's error.
        source: serde_norway::Error,
    },
    /// A value the configuration may not have, or that perfkit does not
    /// support.
    #[error("in {}: {message}", path.display())]
    Invalid {
        /// The configuration file.
        path: PathBuf,
        /// What is wrong, and what to do.
        message: String,
    },
}

type Result<T, E = WebConfigError> = std::result::Result<T, E>;

/// The most a web configuration, certificate or key file may hold.
const MAX_FILE: u64 = 1 << 20;

/// The bcrypt hash checked for an unknown user, so that the time of a
/// refusal does not tell whether a user exists (exporter-toolkit does the
/// same). Whatever it verifies, an unknown user is refused.
const DUMMY_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

/// Verified (user, password, hash) outcomes kept at most.
const CACHE_ENTRIES: usize = 1024;

/// Requests that may wait for a bcrypt verification; more are answered
/// "busy" at once instead of holding a slot.
const MAX_BCRYPT_WAITING: usize = 8;

/// What `BasicAuth::check` decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The right user and password.
    Allowed,
    /// No credentials, or wrong ones.
    Denied,
    /// A new guess while too many wait to be verified: retry later.
    Busy,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    tls_server_config: Option<RawTls>,
    http_server_config: Option<RawHttp>,
    basic_auth_users: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    min_version: Option<String>,
    max_version: Option<String>,
    // exporter-toolkit's other keys: known, and refused by name below.
    cert: Option<serde_norway::Value>,
    key: Option<serde_norway::Value>,
    client_ca: Option<serde_norway::Value>,
    cipher_suites: Option<serde_norway::Value>,
    curve_preferences: Option<serde_norway::Value>,
    prefer_server_cipher_suites: Option<serde_norway::Value>,
    client_allowed_sans: Option<serde_norway::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    headers: Option<serde_norway::Value>,
}

/// Who may connect, and how.
pub struct WebConfig {
    /// TLS, when `tls_server_config` is given.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Whether clients must present a certificate signed by `client_ca_file`.
    pub client_certs_required: bool,
    /// Basic authentication, when `basic_auth_users` is given.
    pub basic_auth: Option<Arc<BasicAuth>>,
}

impl WebConfig {
    /// Whether every request must prove who sends it.
    pub fn authenticates(&self) -> bool {
        self.basic_auth.is_some() || self.client_certs_required
    }

    /// Reads and checks a web configuration file, and the files it names
    /// (relative paths are taken from the configuration's directory). Each
    /// must be a regular file no other user can change.
    pub fn load(path: &Path) -> Result<Self> {
        let text = read_trusted(path, "web configuration")?;
        let raw: RawConfig = if text.iter().all(u8::is_ascii_whitespace) {
            RawConfig::default()
        } else {
            serde_norway::from_slice(&text).map_err(|source| WebConfigError::Yaml { path: path.into(), source })?
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        let in_config = |e: Problem| match e {
            Problem::File(e) => e,
            Problem::Message(message) => WebConfigError::Invalid { path: path.into(), message },
        };
        if let Some(http) = &raw.http_server_config {
            if http.headers.is_some() {
                return Err(in_config(Problem::Message(
                    "http_server_config.headers is not supported by perfkit; remove it".into(),
                )));
            }
            // http2: perfkit serves HTTP/1.1 only, which every scraper speaks.
            let _ = http.http2;
        }
        let (tls, client_certs_required) = match &raw.tls_server_config {
            None => (None, false),
            Some(t) => {
                let (cfg, required) = tls_config(t, dir).map_err(in_config)?;
                (Some(Arc::new(cfg)), required)
            }
        };
        let basic_auth = match raw.basic_auth_users {
            None => None,
            Some(users) => {
                for (user, hash) in &users {
                    if user.contains(':') {
                        return Err(in_config(Problem::Message(format!(
                            "basic_auth_users: user name {user:?} contains ':'"
                        ))));
                    }
                    hash.parse::<bcrypt::HashParts>().map_err(|e| {
                        in_config(Problem::Message(format!(
                            "basic_auth_users: the hash of {user:?} is not a bcrypt hash ({e}); make one with `htpasswd -nBC 10 USER`"
                        )))
                    })?;
                }
                Some(Arc::new(BasicAuth::new(users.into_iter().collect())))
            }
        };
        Ok(Self { tls, client_certs_required, basic_auth })
    }
}

/// What went wrong in the TLS settings: a file's own error, or a message
/// about the configuration.
enum Problem {
    File(WebConfigError),
    Message(String),
}

impl From<WebConfigError> for Problem {
    fn from(e: WebConfigError) -> Self {
        Problem::File(e)
    }
}

macro_rules! bail {
    ($($t:tt)*) => { return Err(Problem::Message(format!($($t)*))) };
}

fn tls_config(t: &RawTls, dir: &Path) -> Result<(rustls::ServerConfig, bool), Problem> {
    for (key, given) in [
        ("cert", t.cert.is_some()),
        ("key", t.key.is_some()),
        ("client_ca", t.client_ca.is_some()),
        ("cipher_suites", t.cipher_suites.is_some()),
        ("curve_preferences", t.curve_preferences.is_some()),
        ("prefer_server_cipher_suites", t.prefer_server_cipher_suites.is_some()),
        ("client_allowed_sans", t.client_allowed_sans.is_some()),
    ] {
        if given {
            bail!(
                "tls_server_config.{key} is not supported by perfkit; remove it (cert_file, key_file, client_auth_type, client_ca_file, min_version and max_version are)"
            );
        }
    }
    let Some(cert_file) = t.cert_file.as_ref() else { bail!("tls_server_config: missing cert_file") };
    let Some(key_file) = t.key_file.as_ref() else { bail!("tls_server_config: missing key_file") };
    let resolve = |p: &PathBuf| if p.is_absolute() { p.clone() } else { dir.join(p) };
    let version = |v: &Option<String>, default: usize| -> Result<usize, Problem> {
        match v.as_deref() {
            None => Ok(default),
            Some("TLS12") => Ok(0),
            Some("TLS13") => Ok(1),
            Some(other @ ("TLS10" | "TLS11")) => {
                bail!("tls_server_config: {other} is not supported (TLS12 and TLS13 are)")
            }
            Some(other) => bail!("tls_server_config: unknown TLS version {other:?} (TLS12 or TLS13)"),
        }
    };
    let all = [&rustls::version::TLS12, &rustls::version::TLS13];
    let (min, max) = (version(&t.min_version, 0)?, version(&t.max_version, 1)?);
    if min > max {
        bail!("tls_server_config: min_version is above max_version");
    }
    let versions = &all[min..=max];
    // ring: builds with a C compiler alone. rustls 0.23.48 deprecates its
    // provider for lacking post-quantum key exchange (X25519 and the NIST
    // curves remain, as Go's exporters offer).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = match rustls::ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(versions) {
        Ok(b) => b,
        Err(e) => bail!("tls_server_config: choosing the TLS versions: {e}"),
    };
    let (builder, required) = match t.client_auth_type.as_deref().unwrap_or("NoClientCert") {
        "NoClientCert" => {
            if t.client_ca_file.is_some() {
                bail!(
                    "tls_server_config: client_ca_file needs client_auth_type RequireAndVerifyClientCert or VerifyClientCertIfGiven"
                );
            }
            (builder.with_no_client_auth(), false)
        }
        kind @ ("RequireAndVerifyClientCert" | "VerifyClientCertIfGiven") => {
            let Some(ca) = t.client_ca_file.as_ref() else {
                bail!("tls_server_config: client_auth_type {kind} needs client_ca_file")
            };
            let ca = resolve(ca);
            let bytes = read_trusted(&ca, "client CA")?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in certificates(&bytes, &ca)? {
                if let Err(e) = roots.add(cert) {
                    bail!("{}: not a usable CA certificate: {e}", ca.display());
                }
            }
            let mut verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let required = kind == "RequireAndVerifyClientCert";
            if !required {
                verifier = verifier.allow_unauthenticated();
            }
            let verifier = match verifier.build() {
                Ok(v) => v,
                Err(e) => bail!("{}: building the client verifier: {e}", ca.display()),
            };
            (builder.with_client_cert_verifier(verifier), required)
        }
        kind @ ("RequestClientCert" | "RequireAnyClientCert") => bail!(
            "tls_server_config: client_auth_type {kind} (certificates not verified) is not supported by perfkit; use RequireAndVerifyClientCert with client_ca_file"
        ),
        other => bail!(
            "tls_server_config: unknown client_auth_type {other:?} (NoClientCert, RequireAndVerifyClientCert or VerifyClientCertIfGiven)"
        ),
    };
    let cert_path = resolve(cert_file);
    let certs = certificates(&read_trusted(&cert_path, "certificate")?, &cert_path)?;
    let key_path = resolve(key_file);
    let key = {
        use rustls_pki_types::pem::PemObject;
        match rustls_pki_types::PrivateKeyDer::from_pem_slice(&read_trusted(&key_path, "private key")?) {
            Ok(k) => k,
            Err(e) => bail!("{}: no PEM private key ({e})", key_path.display()),
        }
    };
    let mut cfg = match builder.with_single_cert(certs, key) {
        Ok(c) => c,
        Err(e) => bail!(
            "{} and {}: the certificate and key do not make a server identity: {e}",
            cert_path.display(),
            key_path.display()
        ),
    };
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((cfg, required))
}

fn certificates(bytes: &[u8], path: &Path) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, Problem> {
    use rustls_pki_types::pem::PemObject;
    let certs: Vec<_> = match rustls_pki_types::CertificateDer::pem_slice_iter(bytes).collect::<Result<_, _>>() {
        Ok(c) => c,
        Err(e) => bail!("{}: not PEM certificates ({e})", path.display()),
    };
    if certs.is_empty() {
        bail!("{}: no PEM certificate in it", path.display());
    }
    Ok(certs)
}

/// Reads a file perfkit trusts (as root) to decide who may connect: it must
/// be a regular file of at most 1 MiB that no other user can change: owned by
/// root or by the user running perfkit, and neither group- nor
/// world-writable.
pub fn read_trusted(path: &Path, what: &'static str) -> Result<Vec<u8>> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|source| WebConfigError::Open { what, path: path.into(), source })?;
    let meta = file.metadata().map_err(|source| WebConfigError::Read { what, path: path.into(), source })?;
    check_trusted(&meta, path, what)?;
    let mut bytes = Vec::new();
    (&mut file).take(MAX_FILE + 1).read_to_end(&mut bytes).map_err(|source| WebConfigError::Read {
        what,
        path: path.into(),
        source,
    })?;
    if bytes.len() as u64 > MAX_FILE {
        return Err(WebConfigError::Unfit { what, path: path.into(), problem: "is larger than 1 MiB" });
    }
    Ok(bytes)
}

fn check_trusted(meta: &std::fs::Metadata, path: &Path, what: &'static str) -> Result<()> {
    if !meta.file_type().is_file() {
        return Err(WebConfigError::Unfit { what, path: path.into(), problem: "is not a regular file" });
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != 0 && meta.uid() != me {
        return Err(WebConfigError::Untrusted {
            what,
            path: path.into(),
            reason: format!("it is owned by uid {}, who could rewrite it", meta.uid()),
            fix: format!("make root own it (chown root {})", path.display()),
        });
    }
    if meta.mode() & 0o022 != 0 {
        let who = if meta.mode() & 0o002 != 0 { "every user" } else { "its group" };
        return Err(WebConfigError::Untrusted {
            what,
            path: path.into(),
            reason: format!("{who} can write to it (mode {:o})", meta.mode() & 0o7777),
            fix: format!("chmod go-w {}", path.display()),
        });
    }
    Ok(())
}

/// Basic authentication against bcrypt hashes.
///
/// bcrypt is slow on purpose. So that a flood of requests cannot burn the
/// CPU, as exporter-toolkit does: one verification runs at a time, and each
/// outcome is remembered by a SHA-256 of (user, password, hash), so a known
/// client costs one hash lookup per request and only new guesses cost a
/// bcrypt, one after the other.
pub struct BasicAuth {
    users: HashMap<String, String>,
    cache: Mutex<HashMap<[u8; 32], bool>>,
    bcrypt: tokio::sync::Mutex<()>,
    waiting: std::sync::atomic::AtomicUsize,
}

impl BasicAuth {
    /// Users and their bcrypt hashes (`$2y$`, `$2b$`...).
    pub fn new(users: HashMap<String, String>) -> Self {
        Self { users, cache: Mutex::default(), bcrypt: tokio::sync::Mutex::new(()), waiting: Default::default() }
    }

    /// Whether an `Authorization` header names a user with the right
    /// password.
    pub async fn check(&self, authorization: Option<&[u8]>) -> Verdict {
        use std::sync::atomic::Ordering;
        let Some((user, password)) = authorization.and_then(parse_basic) else { return Verdict::Denied };
        let known = self.users.get(&user);
        let hash = known.map_or(DUMMY_HASH, String::as_str).to_owned();
        let key = cache_key(&user, &password, &hash);
        let verdict = |ok: bool| if ok && known.is_some() { Verdict::Allowed } else { Verdict::Denied };
        if let Some(&ok) = self.cache.lock().expect("auth cache").get(&key) {
            return verdict(ok);
        }
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= MAX_BCRYPT_WAITING {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return Verdict::Busy;
        }
        // One bcrypt at a time, off the runtime's threads.
        let one = self.bcrypt.lock().await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        // Another request may have verified the same guess meanwhile.
        if let Some(&ok) = self.cache.lock().expect("auth cache").get(&key) {
            return verdict(ok);
        }
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .unwrap_or(false);
        drop(one);
        let mut cache = self.cache.lock().expect("auth cache");
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        cache.insert(key, ok);
        verdict(ok)
    }
}

fn cache_key(user: &str, password: &[u8], hash: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in [user.as_bytes(), password, hash.as_bytes()] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// (user, password) of `Basic base64(user:password)`.
fn parse_basic(header: &[u8]) -> Option<(String, Vec<u8>)> {
    let header = std::str::from_utf8(header).ok()?.trim();
    let (scheme, encoded) = header.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") || encoded.len() > 4096 {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An error and its causes on one line.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut text = e.to_string();
        let mut cause = e.source();
        while let Some(c) = cause {
            text += &format!(": {c}");
            cause = c.source();
        }
        text
    }

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn parses_basic_credentials() {
        let h = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("prom:s3:cret"));
        assert_eq!(parse_basic(h.as_bytes()), Some(("prom".into(), b"s3:cret".to_vec())));
        assert_eq!(parse_basic(b"Bearer abc"), None);
        assert_eq!(parse_basic(b"Basic !!!"), None);
    }

    #[test]
    fn unknown_keys_and_unsupported_options_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = |text: &str| {
            let p = write(dir.path(), "web.yml", text, 0o600);
            chain(&WebConfig::load(&p).err().expect("an error"))
        };
        assert!(err("basic_auth_user:\n  a: b\n").contains("unknown field"), "{}", err("basic_auth_user: {}\n"));
        assert!(err("tls_server_config:\n  cipher_suites: [x]\n").contains("not supported"));
        assert!(
            err("tls_server_config:\n  client_auth_type: RequireAnyClientCert\n  cert_file: a\n  key_file: b\n")
                .contains("not supported")
        );
        assert!(err("basic_auth_users:\n  a: plaintext\n").contains("not a bcrypt hash"));
        assert!(err("tls_server_config:\n  key_file: k\n").contains("missing cert_file"));
    }

    #[test]
    fn files_others_can_change_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "web.yml", "", 0o666);
        assert!(chain(&WebConfig::load(&p).err().unwrap()).contains("every user can write"));
        let p = write(dir.path(), "web2.yml", "", 0o620);
        assert!(chain(&WebConfig::load(&p).err().unwrap()).contains("its group can write"));
        let p = write(dir.path(), "web3.yml", "", 0o644);
        assert!(WebConfig::load(&p).is_ok());
    }

    #[tokio::test]
    async fn checks_passwords_and_caches_outcomes() {
        let hash = bcrypt::hash("right", 4).unwrap();
        let auth = BasicAuth::new([("prom".to_owned(), hash)].into());
        let basic = |u: &str, p: &str| {
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))).into_bytes()
        };
        assert_eq!(auth.check(Some(&basic("prom", "right"))).await, Verdict::Allowed);
        assert_eq!(auth.check(Some(&basic("prom", "right"))).await, Verdict::Allowed);
        assert_eq!(auth.check(Some(&basic("prom", "wrong"))).await, Verdict::Denied);
        assert_eq!(auth.check(Some(&basic("nobody", "right"))).await, Verdict::Denied);
        assert_eq!(auth.check(None).await, Verdict::Denied);
        assert_eq!(auth.cache.lock().unwrap().len(), 3);
    }
}
