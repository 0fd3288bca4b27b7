//! `perfkit serve` access control and fairness (issue 17): the
//! exporter-toolkit web configuration (basic authentication with bcrypt
//! hashes, TLS, client certificates), configurations other users could
//! change refused, the warning on a non-loopback address, and a scraper
//! served under a flood of local clients. All traffic goes to 127.0.0.1.

use std::{
    fs,
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use crate::util::*;

/// The unprivileged user these tests plant files as.
const MALLORY: &str = "pk-mallory-serve";
const USER: &str = "prometheus";
const PASSWORD: &str = "correct horse battery staple";

/// Creates the unprivileged user (once; reused if it exists) and returns
/// its uid.
fn mallory() -> u32 {
    let id = |name: &str| Command::new("id").args(["-u", name]).output().ok().filter(|o| o.status.success());
    if id(MALLORY).is_none() {
        let out = run(Command::new("useradd").args(["-M", "-r", "-s", "/usr/sbin/nologin", MALLORY]));
        assert!(out.status.success() || id(MALLORY).is_some(), "useradd {MALLORY}");
    }
    String::from_utf8_lossy(&id(MALLORY).unwrap().stdout).trim().parse().unwrap()
}

/// Writes a file with a mode.
fn write_mode(path: &Path, text: &str, mode: u32) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A web configuration with the test's user (bcrypt, cost 4 to keep the
/// test fast) and `extra` YAML, written 0600 in `dir`.
fn web_config(dir: &Path, extra: &str) -> PathBuf {
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let path = dir.join("web.yml");
    write_mode(&path, &format!("{extra}basic_auth_users:\n  {USER}: '{hash}'\n"), 0o600);
    path
}

/// `perfkit serve` with `args` on a free loopback port, stderr kept in a
/// file; waits until it listens.
fn start(args: &[&str], stderr_file: &Path) -> (Killed, u16) {
    start_on("127.0.0.1", args, stderr_file)
}

fn start_on(host: &str, args: &[&str], stderr_file: &Path) -> (Killed, u16) {
    let port = free_port();
    let child = perfkit()
        .args(["serve", "--listen", &format!("{host}:{port}")])
        .args(args)
        .stdout(Stdio::null())
        .stderr(fs::File::create(stderr_file).unwrap())
        .spawn()
        .unwrap();
    let mut server = Killed(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = server.0.try_wait() {
            panic!("perfkit serve exited ({status}): {}", fs::read_to_string(stderr_file).unwrap_or_default());
        }
        assert!(Instant::now() < deadline, "perfkit serve did not listen");
        thread::sleep(Duration::from_millis(50));
    }
    (server, port)
}

/// Basic credentials as an `Authorization` header value.
fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

/// One `GET` over a new connection: (status, head, body). `None` when the
/// server did not answer within `timeout`.
fn get(port: u16, path: &str, authorization: Option<&str>, timeout: Duration) -> Option<(u16, String, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.set_write_timeout(Some(timeout)).ok()?;
    let auth = authorization.map(|a| format!("Authorization: {a}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n").ok()?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).ok()?;
    let split = reply.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&reply[..split]).into_owned();
    let status = head.get(9..12)?.parse().ok()?;
    Some((status, head, reply[split + 4..].to_vec()))
}

fn status(port: u16, path: &str, authorization: Option<&str>) -> u16 {
    get(port, path, authorization, Duration::from_secs(30)).map_or(0, |r| r.0)
}

#[test]
fn web_config_basic_auth_guards_every_endpoint() {
    let Some(_serial) = privileged() else { return };
    let dir = scratch_dir();
    let config = web_config(dir.path(), "");
    let log = dir.path().join("stderr");
    let (_server, port) = start(&["--web-config", config.to_str().unwrap()], &log);
    let right = basic(USER, PASSWORD);
    let wrong = basic(USER, "guess");
    let nobody = basic("mallory", PASSWORD);
    // A root process's profile by pid, as the issue found it open to anyone.
    let pid = std::process::id();
    let profile = format!("/debug/pprof/profile?seconds=1&pid={pid}");
    for path in ["/metrics", "/", "/nowhere", profile.as_str()] {
        let (code, head, _) = get(port, path, None, Duration::from_secs(10)).expect("an answer");
        assert_eq!(code, 401, "{path} without credentials: {head}");
        assert!(head.to_ascii_lowercase().contains("www-authenticate: basic"), "{path}: {head}");
        assert_eq!(status(port, path, Some(&wrong)), 401, "{path} with a wrong password");
        assert_eq!(status(port, path, Some(&nobody)), 401, "{path} with an unknown user");
        assert_eq!(status(port, path, Some("Bearer x")), 401, "{path} with another scheme");
    }
    let (code, _, body) = get(port, "/metrics", Some(&right), Duration::from_secs(10)).unwrap();
    assert_eq!(code, 200);
    assert!(String::from_utf8_lossy(&body).contains("perfkit_build_info"));
    assert_eq!(status(port, "/", Some(&right)), 200);
    let (code, head, body) = get(port, &profile, Some(&right), Duration::from_secs(30)).unwrap();
    assert_eq!(code, 200, "{head}\n{}", String::from_utf8_lossy(&body));
    assert!(body.starts_with(&[0x1f, 0x8b]), "a gzipped pprof profile");
    // The startup line names no warning: authentication is configured.
    drop(_server);
    assert!(!fs::read_to_string(&log).unwrap().contains("warning"));
}

/// A self-signed certificate for 127.0.0.1 (`openssl req`), as (cert,
/// key).
fn self_signed(dir: &Path, name: &str, cn: &str) -> (PathBuf, PathBuf) {
    let (crt, key) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    let out = run(Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-days", "2", "-subj", &format!("/CN={cn}"), "-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt));
    assert!(out.status.success());
    (crt, key)
}

/// `curl` over TLS: (exit status, http code).
fn curl(port: u16, path: &str, args: &[&str]) -> (bool, String) {
    let out = run(Command::new("curl")
        .args(["-sS", "--max-time", "20", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(args)
        .arg(format!("https://127.0.0.1:{port}{path}")));
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn web_config_serves_tls_and_verifies_client_certificates() {
    let Some(_serial) = privileged() else { return };
    if !tools(&["openssl", "curl"]) {
        return;
    }
    let dir = scratch_dir();
    let (crt, key) = self_signed(dir.path(), "server", "perfkit-test");
    let tls = format!("tls_server_config:\n  cert_file: {}\n  key_file: {}\n", crt.display(), key.display());
    let config = web_config(dir.path(), &tls);
    let log = dir.path().join("stderr");
    let (server, port) = start(&["--web-config", config.to_str().unwrap()], &log);
    let ca = crt.to_str().unwrap();
    let user = format!("{USER}:{PASSWORD}");
    assert_eq!(curl(port, "/metrics", &["--cacert", ca, "-u", &user]), (true, "200".into()));
    assert_eq!(curl(port, "/metrics", &["--cacert", ca, "-u", "prometheus:nope"]), (true, "401".into()));
    assert_eq!(curl(port, "/metrics", &["--cacert", ca]), (true, "401".into()));
    // Plain HTTP gets no metrics from a TLS port.
    let plain = get(port, "/metrics", Some(&basic(USER, PASSWORD)), Duration::from_secs(10));
    assert!(plain.is_none_or(|(code, _, body)| code != 200 && !String::from_utf8_lossy(&body).contains("perfkit")));
    drop(server);

    // Client certificates: a CA, a client certificate it signed, and one it
    // did not.
    let (ca_crt, ca_key) = self_signed(dir.path(), "ca", "perfkit-test-ca");
    let client_key = dir.path().join("client.key");
    let client_csr = dir.path().join("client.csr");
    let client_crt = dir.path().join("client.crt");
    let ext = dir.path().join("client.ext");
    fs::write(&ext, "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n").unwrap();
    let out = run(Command::new("openssl")
        .args(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=scraper"])
        .arg("-keyout")
        .arg(&client_key)
        .arg("-out")
        .arg(&client_csr));
    assert!(out.status.success());
    let out = run(Command::new("openssl")
        .args(["x509", "-req", "-days", "2", "-in"])
        .arg(&client_csr)
        .arg("-CA")
        .arg(&ca_crt)
        .arg("-CAkey")
        .arg(&ca_key)
        .arg("-CAcreateserial")
        .arg("-extfile")
        .arg(&ext)
        .arg("-out")
        .arg(&client_crt));
    assert!(out.status.success());
    let (stranger_crt, stranger_key) = self_signed(dir.path(), "stranger", "stranger");
    let tls = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\n",
        crt.display(),
        key.display(),
        ca_crt.display()
    );
    let config = dir.path().join("web-mtls.yml");
    write_mode(&config, &tls, 0o600);
    let (_server, port) = start(&["--web-config", config.to_str().unwrap()], &log);
    let (cc, ck) = (client_crt.to_str().unwrap(), client_key.to_str().unwrap());
    assert_eq!(curl(port, "/metrics", &["--cacert", ca, "--cert", cc, "--key", ck]), (true, "200".into()));
    let (ok, code) = curl(port, "/metrics", &["--cacert", ca]);
    assert!(!ok && code != "200", "no client certificate: {code}");
    let (sc, sk) = (stranger_crt.to_str().unwrap(), stranger_key.to_str().unwrap());
    let (ok, code) = curl(port, "/metrics", &["--cacert", ca, "--cert", sc, "--key", sk]);
    assert!(!ok && code != "200", "a certificate of another CA: {code}");
}

#[test]
fn web_config_other_users_can_change_is_refused() {
    let Some(_serial) = privileged() else { return };
    let dir = scratch_dir();
    let uid = mallory();
    let config = web_config(dir.path(), "");
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let serve = |config: &Path| {
        run(perfkit().args(["serve", "--listen", &listen, "--web-config"]).arg(config).stdin(Stdio::null()))
    };
    // World-writable: anyone could add a user.
    fs::set_permissions(&config, fs::Permissions::from_mode(0o666)).unwrap();
    let out = serve(&config);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("every user can write"), "{}", stderr(&out));
    // Group-writable.
    fs::set_permissions(&config, fs::Permissions::from_mode(0o660)).unwrap();
    let out = serve(&config);
    assert!(stderr(&out).contains("its group can write"), "{}", stderr(&out));
    // Mallory's own file, mode 0644: she could rewrite it.
    fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(&config, Some(uid), None).unwrap();
    let out = serve(&config);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&format!("owned by uid {uid}")), "{}", stderr(&out));
    // A symlink Mallory planted to root's file is not followed.
    std::os::unix::fs::chown(&config, Some(0), None).unwrap();
    let link = dir.path().join("link.yml");
    std::os::unix::fs::symlink(&config, &link).unwrap();
    let out = serve(&link);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot open"), "{}", stderr(&out));
    // A key file Mallory can write is refused as well.
    let key = dir.path().join("server.key");
    write_mode(&key, "", 0o666);
    let with_tls = dir.path().join("tls.yml");
    write_mode(&with_tls, &format!("tls_server_config:\n  cert_file: {0}\n  key_file: {0}\n", key.display()), 0o600);
    let out = serve(&with_tls);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("every user can write"), "{}", stderr(&out));
    // Unknown keys are errors, as in exporter-toolkit.
    let typo = dir.path().join("typo.yml");
    write_mode(&typo, "basic_auth_user:\n  prometheus: x\n", 0o600);
    let out = serve(&typo);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("unknown field"), "{}", stderr(&out));
}

#[test]
fn serve_warns_when_listening_beyond_loopback_without_authentication() {
    let Some(_serial) = privileged() else { return };
    let dir = scratch_dir();
    let log = dir.path().join("stderr");
    let warned = |host: &str, args: &[&str]| {
        let (server, _port) = start_on(host, args, &log);
        thread::sleep(Duration::from_millis(200));
        drop(server);
        let text = fs::read_to_string(&log).unwrap();
        eprintln!("{host} {args:?}: {text}");
        text.contains("warning") && text.contains("without authentication")
    };
    // No traffic goes to these addresses: the server is only asked to bind.
    assert!(warned("0.0.0.0", &[]), "no warning on 0.0.0.0");
    assert!(!warned("127.0.0.1", &[]), "a warning on loopback");
    let config = web_config(dir.path(), "");
    assert!(!warned("0.0.0.0", &["--web-config", config.to_str().unwrap()]), "a warning with basic auth");
    // The default address is loopback.
    let help = run(perfkit().args(["serve", "--help"]));
    assert!(String::from_utf8_lossy(&help.stdout).contains("[default: 127.0.0.1:9464]"));
}

/// Reads one HTTP/1.1 response (with Content-Length) from a keep-alive
/// connection; false on error or close.
fn read_response(r: &mut BufReader<TcpStream>) -> bool {
    let mut len = None;
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => return false,
            Ok(_) => {}
        }
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse::<u64>().ok();
        }
    }
    let Some(len) = len else { return false };
    std::io::copy(&mut r.by_ref().take(len), &mut std::io::sink()).is_ok_and(|n| n == len)
}

#[test]
fn a_scraper_is_served_under_a_flood_of_looping_clients() {
    let Some(_serial) = privileged() else { return };
    let dir = scratch_dir();
    let log = dir.path().join("stderr");
    let (_server, port) = start(&[], &log);
    const CLIENTS: usize = 150;
    const FLOOD: Duration = Duration::from_secs(10);
    let stop = Arc::new(AtomicBool::new(false));
    let served = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + FLOOD;
    // Half keep their connection and loop on it, half reconnect for each
    // request; none sleeps.
    let flood: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (stop, served) = (stop.clone(), served.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                    let Ok(s) = TcpStream::connect(("127.0.0.1", port)) else {
                        thread::sleep(Duration::from_millis(10));
                        continue;
                    };
                    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                    let mut w = s.try_clone().unwrap();
                    let mut r = BufReader::new(s);
                    let keep = i % 2 == 0;
                    let close = if keep { "" } else { "Connection: close\r\n" };
                    while !stop.load(Ordering::Relaxed) && Instant::now() < until {
                        if write!(w, "GET /metrics HTTP/1.1\r\nHost: x\r\n{close}\r\n").is_err()
                            || !read_response(&mut r)
                        {
                            break;
                        }
                        served.fetch_add(1, Ordering::Relaxed);
                        if !keep {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    // Let the flood build up, then scrape at 2 Hz for the rest of it, each
    // scrape with Prometheus's default 10 s timeout.
    thread::sleep(Duration::from_secs(1));
    let scrapes: Vec<_> = (0..18)
        .map(|i| {
            thread::sleep(Duration::from_millis(if i == 0 { 0 } else { 500 }));
            thread::spawn(move || {
                let started = Instant::now();
                let ok = get(port, "/metrics", None, Duration::from_secs(10)).is_some_and(|(code, _, body)| {
                    code == 200 && String::from_utf8_lossy(&body).contains("perfkit_build_info")
                });
                (ok && started.elapsed() < Duration::from_secs(10), started.elapsed())
            })
        })
        .collect();
    let results: Vec<(bool, Duration)> = scrapes.into_iter().map(|t| t.join().unwrap()).collect();
    stop.store(true, Ordering::Relaxed);
    for t in flood {
        t.join().unwrap();
    }
    let ok = results.iter().filter(|r| r.0).count();
    let served = served.load(Ordering::Relaxed);
    eprintln!("scrapes: {ok} of {} succeeded: {results:?}; the flood got {served} responses", results.len());
    assert!(served >= 1000, "the flood was not a flood: {served} responses");
    assert!(ok * 4 >= results.len() * 3, "only {ok} of {} scrapes succeeded within 10 s: {results:?}", results.len());
}

/// CPU seconds (user + system) a process has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit_once(')').unwrap().1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 (1-based, the first two before
    // the ')').
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

#[test]
fn a_flood_of_wrong_passwords_burns_at_most_one_core_and_the_scraper_gets_in() {
    let Some(_serial) = privileged() else { return };
    let dir = scratch_dir();
    // Cost 10, as `htpasswd -B` makes: each new guess is real work.
    let hash = bcrypt::hash(PASSWORD, 10).unwrap();
    let config = dir.path().join("web.yml");
    write_mode(&config, &format!("basic_auth_users:\n  {USER}: '{hash}'\n"), 0o600);
    let log = dir.path().join("stderr");
    let (server, port) = start(&["--web-config", config.to_str().unwrap()], &log);
    let right = basic(USER, PASSWORD);
    assert_eq!(status(port, "/metrics", Some(&right)), 200);
    let cpu_before = cpu_seconds(server.0.id());
    let started = Instant::now();
    let until = started + Duration::from_secs(6);
    let guesses = Arc::new(AtomicU64::new(0));
    let flood: Vec<_> = (0..50)
        .map(|i| {
            let guesses = guesses.clone();
            thread::spawn(move || {
                let mut n = 0u64;
                while Instant::now() < until {
                    n += 1;
                    let _ =
                        get(port, "/metrics", Some(&basic(USER, &format!("guess-{i}-{n}"))), Duration::from_secs(5));
                    guesses.fetch_add(1, Ordering::Relaxed);
                    // 50 clients, up to 2,500 new guesses a second: far more
                    // than bcrypt checks (about 15 a second at cost 10), so
                    // the bcrypt work, not the serving, is what is measured.
                    thread::sleep(Duration::from_millis(20));
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    let scrapes: Vec<_> = (0..10)
        .map(|i| {
            thread::sleep(Duration::from_millis(if i == 0 { 0 } else { 500 }));
            let right = right.clone();
            thread::spawn(move || {
                get(port, "/metrics", Some(&right), Duration::from_secs(10)).is_some_and(|(code, _, _)| code == 200)
            })
        })
        .collect();
    let ok = scrapes.into_iter().map(|t| t.join().unwrap()).filter(|&ok| ok).count();
    for t in flood {
        t.join().unwrap();
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds(server.0.id()) - cpu_before;
    eprintln!("{ok} of 10 scrapes; {} guesses; server CPU {cpu:.2} s in {wall:.2} s", guesses.load(Ordering::Relaxed));
    assert!(ok >= 8, "only {ok} of 10 scrapes with the right password succeeded under the flood");
    // bcrypt runs one at a time: about one core, plus serving.
    assert!(cpu < 1.3 * wall, "the server used {cpu:.2} CPU seconds in {wall:.2} s");
}

/// `/debug/pprof/` is an index of the profiles, as Go's net/http/pprof
/// serves one (and `/debug/pprof` leads there), and a `seconds` that is
/// not a positive number means Go's 30 s: the profile runs (a second
/// request meanwhile is told to retry when it ends, about 29 s later)
/// instead of a 400.
#[test]
fn pprof_index_and_go_fallback_for_bad_seconds() {
    let Some(_serial) = privileged() else { return };
    let dir = scratch_dir();
    let log = dir.path().join("stderr");
    let (_server, port) = start(&[], &log);
    let (code, head, body) = get(port, "/debug/pprof/", None, Duration::from_secs(10)).expect("an answer");
    let body = String::from_utf8_lossy(&body);
    assert_eq!(code, 200, "{head}");
    assert!(head.to_ascii_lowercase().contains("content-type: text/html"), "{head}");
    assert!(body.contains("Types of profiles available") && body.contains("<a href='profile'>profile</a>"), "{body}");
    let (code, head, _) = get(port, "/debug/pprof", None, Duration::from_secs(10)).unwrap();
    assert!(code == 301 || code == 308, "{head}");
    assert!(head.to_ascii_lowercase().contains("location: /debug/pprof/"), "{head}");
    assert!(
        String::from_utf8_lossy(&get(port, "/", None, Duration::from_secs(10)).unwrap().2).contains("/debug/pprof/")
    );

    for bad in ["abc", "0", "-5"] {
        let (_server, port) = start(&[], &dir.path().join(format!("stderr-{bad}")));
        // The first request profiles for 30 s: no answer within 3 s.
        let path = format!("/debug/pprof/profile?seconds={bad}&hz=9");
        let slow = thread::spawn(move || get(port, &path, None, Duration::from_secs(3)));
        thread::sleep(Duration::from_millis(1000));
        let (code, head, body) = get(port, "/debug/pprof/profile?seconds=1", None, Duration::from_secs(10)).unwrap();
        assert_eq!(code, 429, "seconds={bad}: {head} {}", String::from_utf8_lossy(&body));
        // About 29 s of the 30 left (a 1 s profile would have ended).
        let retry: u64 = head
            .lines()
            .find_map(|l| l.to_ascii_lowercase().strip_prefix("retry-after: ").map(str::to_owned))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("seconds={bad}: {head}"));
        assert!((27..=30).contains(&retry), "seconds={bad}: retry after {retry}: {head}");
        assert!(slow.join().unwrap().is_none(), "seconds={bad} answered at once");
    }
    // Longer than the server allows is still refused, naming the limit.
    let (code, _, body) = get(port, "/debug/pprof/profile?seconds=301", None, Duration::from_secs(10)).unwrap();
    assert_eq!(code, 400);
    assert!(String::from_utf8_lossy(&body).contains("maximum of 300 s"));
}
