//! Debian's kernels for the matrix: the image package a metapackage depends
//! on, downloaded with `apt-get download` and unpacked with `dpkg-deb -x`
//! (never installed), cached under `target/vmtest/`.
//!
//! Kernels of the host's own release come through the system's apt state.
//! Kernels of another release (5.10 from Debian 11) come through a private
//! apt state under `target/vmtest/apt/SUITE/`, with one source line built
//! from the host's own Debian mirror, so that the system's sources are left
//! alone.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, SystemTime},
};

/// A kernel of the matrix.
#[derive(Debug)]
pub struct Spec {
    /// Its name on the command line and in the table (`6.1`).
    pub name: &'static str,
    /// The metapackage whose dependency is the image package.
    pub metapackage: &'static str,
    /// `None`: the system's apt state. `Some(suite)`: a private apt state
    /// with this one suite (`bullseye-security`) of the system's mirror.
    pub suite: Option<&'static str>,
}

/// The kernels `cargo xtask vmtest` boots, oldest first. To add one, add a
/// line: a metapackage of the host's release, or one of another Debian
/// suite (see docs/DEVELOPING.md).
pub static KERNELS: &[Spec] = &[
    Spec { name: "5.10", metapackage: "linux-image-cloud-amd64", suite: Some("bullseye-security") },
    Spec { name: "6.1", metapackage: "linux-image-cloud-amd64", suite: None },
    Spec { name: "6.12", metapackage: "linux-image-6.12-cloud-amd64", suite: None },
];

/// A kernel ready to boot: its files, copied out of the package.
pub struct Kernel {
    /// The matrix name (`6.1`).
    pub name: &'static str,
    /// The image package (`linux-image-6.1.0-57-cloud-amd64`).
    pub package: String,
    /// `uname -r` of the kernel (the directory name under lib/modules).
    pub release: String,
    /// The bzImage.
    pub vmlinuz: PathBuf,
    /// loop.ko, uncompressed; `None` when loop is built in.
    pub loop_module: Option<PathBuf>,
}

/// Finds the spec named `name`.
pub fn spec(name: &str) -> Result<&'static Spec, String> {
    KERNELS.iter().find(|k| k.name == name).ok_or_else(|| {
        format!(
            "no kernel named {name:?}; the kernels are {}",
            KERNELS.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
        )
    })
}

/// The image package named by `apt-cache depends METAPACKAGE` output: the
/// first `Depends:` on a real (not `<virtual>`) package whose name starts
/// with `linux-image-{name}.` (so that a metapackage that moved on to
/// another kernel is refused rather than tested under the wrong name).
pub fn image_package(depends_output: &str, name: &str) -> Option<String> {
    let prefix = format!("linux-image-{name}.");
    depends_output.lines().find_map(|line| {
        let dep = line.trim().trim_start_matches('|').strip_prefix("Depends:")?.trim();
        (dep.starts_with(&prefix) && !dep.contains(['<', ' '])).then(|| dep.to_owned())
    })
}

/// The URI of the system's Debian archive for `suite`: from the deb822
/// sources (`/etc/apt/sources.list.d/*.sources`) or one-line lists, the
/// first source of `-security` suites when `suite` is a security suite,
/// else of the others. Falls back to deb.debian.org.
pub fn system_uri(sources: &[String], suite: &str) -> String {
    let security = suite.ends_with("-security");
    let wanted = |suites: &str| suites.split_whitespace().any(|s| s.ends_with("-security") == security);
    for text in sources {
        // deb822 stanzas.
        for stanza in text.split("\n\n") {
            let field = |name: &str| {
                stanza.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
                })
            };
            if let (Some(uris), Some(suites)) = (field("URIs"), field("Suites"))
                && field("Types").is_none_or(|t| t.split_whitespace().any(|t| t == "deb"))
                && wanted(&suites)
                && let Some(uri) = uris.split_whitespace().next()
            {
                return uri.trim_end_matches('/').to_owned();
            }
        }
        // One-line format: deb [options] URI SUITE COMPONENTS...
        for line in text.lines() {
            let mut words = line.split_whitespace();
            if words.next() != Some("deb") {
                continue;
            }
            let mut rest: Vec<&str> = words.collect();
            if rest.first().is_some_and(|w| w.starts_with('[')) {
                let end = rest.iter().position(|w| w.ends_with(']')).unwrap_or(0);
                rest.drain(..=end);
            }
            if let [uri, suite, ..] = rest[..]
                && wanted(suite)
            {
                return uri.trim_end_matches('/').to_owned();
            }
        }
    }
    if security { "http://deb.debian.org/debian-security".into() } else { "http://deb.debian.org/debian".into() }
}

/// The system's apt source files.
fn system_sources() -> Vec<String> {
    let mut texts = Vec::new();
    if let Ok(t) = fs::read_to_string("/etc/apt/sources.list") {
        texts.push(t);
    }
    if let Ok(dir) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut paths: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            if p.extension().is_some_and(|e| e == "sources" || e == "list")
                && let Ok(t) = fs::read_to_string(&p)
            {
                texts.push(t);
            }
        }
    }
    texts
}

/// apt options selecting a private state in `dir`, with its own
/// sources.list.
fn private_options(dir: &Path) -> Vec<String> {
    let d = dir.display();
    vec![
        "-o".into(),
        format!("Dir::Etc::SourceList={d}/sources.list"),
        "-o".into(),
        "Dir::Etc::SourceParts=/nonexistent".into(),
        "-o".into(),
        format!("Dir::State::Lists={d}/lists"),
        "-o".into(),
        format!("Dir::Cache={d}/cache"),
        "-o".into(),
        "Dir::State::status=/dev/null".into(),
    ]
}

/// Runs an apt command, returning its stdout; the error has its stderr.
fn apt(tool: &str, options: &[String], args: &[&str], dir: Option<&Path>) -> Result<String, String> {
    let mut cmd = Command::new(tool);
    cmd.args(options).args(args).env("DEBIAN_FRONTEND", "noninteractive");
    if let Some(d) = dir {
        cmd.current_dir(d);
    }
    let out = cmd.output().map_err(|e| format!("running {tool}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`{tool} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// How old a private apt state's lists may get before they are refreshed
/// (a new kernel ABI in the suite is then picked up).
const LISTS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

/// The name of the file a private apt state's successful update touches
/// (apt gives the lists the archive's own times, not the download's).
const UPDATED_STAMP: &str = "updated";

/// How long ago a private apt state in `dir` was last updated; `None` when
/// never (or its lists are gone).
fn lists_age(dir: &Path) -> Option<Duration> {
    let has_packages = fs::read_dir(dir.join("lists"))
        .ok()?
        .filter_map(Result::ok)
        .any(|e| e.file_name().to_string_lossy().contains("_Packages"));
    let stamp = fs::metadata(dir.join(UPDATED_STAMP)).ok()?.modified().ok()?;
    has_packages.then(|| SystemTime::now().duration_since(stamp).unwrap_or_default())
}

/// Makes a kernel ready under `cache` (target/vmtest): resolves its
/// package, downloads the .deb unless cached, and copies vmlinuz and
/// loop.ko out of it unless done before.
pub fn prepare(spec: &'static Spec, cache: &Path, is_root: bool) -> Result<Kernel, String> {
    let options = match spec.suite {
        None => Vec::new(),
        Some(suite) => {
            let dir = cache.join("apt").join(suite);
            for sub in ["lists/partial", "cache/archives/partial"] {
                fs::create_dir_all(dir.join(sub)).map_err(|e| format!("creating {}: {e}", dir.display()))?;
            }
            let uri = system_uri(&system_sources(), suite);
            let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
            let line = format!("deb [signed-by={keyring}] {uri} {suite} main\n");
            let list = dir.join("sources.list");
            if fs::read_to_string(&list).ok().as_deref() != Some(line.as_str()) {
                fs::write(&list, &line).map_err(|e| format!("writing {}: {e}", list.display()))?;
                let _ = fs::remove_dir_all(dir.join("lists"));
                fs::create_dir_all(dir.join("lists/partial"))
                    .map_err(|e| format!("creating {}: {e}", dir.display()))?;
            }
            private_options(&dir)
        }
    };
    let update = |options: &[String]| -> Result<(), String> {
        if options.is_empty() && !is_root {
            return Err("the system's apt lists need `apt-get update` (as root)".into());
        }
        eprintln!("xtask: apt-get update{}", spec.suite.map(|s| format!(" ({s}, private state)")).unwrap_or_default());
        apt("apt-get", options, &["update", "-qq"], None)?;
        if let Some(suite) = spec.suite {
            let stamp = cache.join("apt").join(suite).join(UPDATED_STAMP);
            fs::write(&stamp, "apt-get update by cargo xtask vmtest\n")
                .map_err(|e| format!("writing {}: {e}", stamp.display()))?;
        }
        Ok(())
    };
    if let Some(suite) = spec.suite {
        match lists_age(&cache.join("apt").join(suite)) {
            None => update(&options)?,
            // Stale lists still name a package; a failed refresh (no
            // network) is not fatal while the cache has what they name.
            Some(age) if age > LISTS_MAX_AGE => {
                if let Err(e) = update(&options) {
                    eprintln!("xtask: refreshing the {suite} lists failed, using the old ones: {e}");
                }
            }
            Some(_) => {}
        }
    }
    let depends = |options: &[String]| apt("apt-cache", options, &["depends", spec.metapackage], None);
    let package = match depends(&options).ok().and_then(|out| image_package(&out, spec.name)) {
        Some(p) => p,
        None => {
            update(&options)?;
            let out = depends(&options)?;
            image_package(&out, spec.name).ok_or_else(|| {
                format!(
                    "kernel {}: `apt-cache depends {}` names no linux-image-{}.* package:\n{}",
                    spec.name,
                    spec.metapackage,
                    spec.name,
                    out.trim()
                )
            })?
        }
    };
    let dir = cache.join("kernels").join(&package);
    if let Some(k) = cached(spec, &package, &dir) {
        return Ok(k);
    }
    let debs = cache.join("debs");
    fs::create_dir_all(&debs).map_err(|e| format!("creating {}: {e}", debs.display()))?;
    let deb = match find_deb(&debs, &package) {
        Some(d) => d,
        None => {
            eprintln!("xtask: downloading {package}");
            if let Err(e) = apt("apt-get", &options, &["download", "-qq", &package], Some(&debs)) {
                // Stale lists name a version the archive dropped.
                eprintln!("xtask: {e}; updating the lists and trying again");
                update(&options)?;
                apt("apt-get", &options, &["download", "-qq", &package], Some(&debs))?;
            }
            find_deb(&debs, &package).ok_or(format!("apt-get download {package} left no .deb in {}", debs.display()))?
        }
    };
    unpack(spec, &package, &deb, &dir)
}

/// A kernel unpacked before (its `release` file is written last).
fn cached(spec: &'static Spec, package: &str, dir: &Path) -> Option<Kernel> {
    let release = fs::read_to_string(dir.join("release")).ok()?.trim().to_owned();
    let vmlinuz = dir.join("vmlinuz");
    let module = dir.join("loop.ko");
    vmlinuz.is_file().then(|| Kernel {
        name: spec.name,
        package: package.to_owned(),
        release,
        vmlinuz,
        loop_module: module.is_file().then_some(module),
    })
}

/// The downloaded `.deb` of `package` in `debs`.
fn find_deb(debs: &Path, package: &str) -> Option<PathBuf> {
    let prefix = format!("{package}_");
    let mut found: Vec<PathBuf> = fs::read_dir(debs)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with(&prefix) && n.ends_with(".deb")
            })
        })
        .collect();
    found.sort();
    found.pop()
}

/// Unpacks the .deb in a scratch directory and keeps vmlinuz, loop.ko
/// (decompressed) and the release name in `dir`.
fn unpack(spec: &'static Spec, package: &str, deb: &Path, dir: &Path) -> Result<Kernel, String> {
    let tree = dir.with_extension("unpack");
    let _ = fs::remove_dir_all(&tree);
    let _ = fs::remove_dir_all(dir);
    fs::create_dir_all(&tree).map_err(|e| format!("creating {}: {e}", tree.display()))?;
    fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let result = (|| {
        let st = Command::new("dpkg-deb").arg("-x").arg(deb).arg(&tree).status();
        if !st.as_ref().is_ok_and(|s| s.success()) {
            return Err(format!("dpkg-deb -x {} failed: {st:?}", deb.display()));
        }
        // lib/modules/RELEASE (or usr/lib/modules/RELEASE on merged-/usr
        // packages).
        let modules = ["lib/modules", "usr/lib/modules"]
            .iter()
            .map(|m| tree.join(m))
            .find(|m| m.is_dir())
            .ok_or(format!("{package} has no lib/modules"))?;
        let release = fs::read_dir(&modules)
            .map_err(|e| e.to_string())?
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .next()
            .ok_or(format!("{package} has no lib/modules/RELEASE"))?;
        let vmlinuz = tree.join("boot").join(format!("vmlinuz-{release}"));
        fs::copy(&vmlinuz, dir.join("vmlinuz")).map_err(|e| format!("copying {}: {e}", vmlinuz.display()))?;
        let config = tree.join("boot").join(format!("config-{release}"));
        let _ = fs::copy(&config, dir.join("config"));
        let loop_dir = modules.join(&release).join("kernel/drivers/block");
        let plain = loop_dir.join("loop.ko");
        if plain.is_file() {
            fs::copy(&plain, dir.join("loop.ko")).map_err(|e| format!("copying {}: {e}", plain.display()))?;
        } else if let Some((file, tool)) = [("loop.ko.xz", "xz"), ("loop.ko.zst", "zstd"), ("loop.ko.gz", "gzip")]
            .iter()
            .find(|(f, _)| loop_dir.join(f).is_file())
        {
            let out = Command::new(tool)
                .arg("-dc")
                .arg(loop_dir.join(file))
                .output()
                .map_err(|e| format!("running {tool} -dc (install it): {e}"))?;
            if !out.status.success() {
                return Err(format!("{tool} -dc {file} failed: {}", String::from_utf8_lossy(&out.stderr)));
            }
            fs::write(dir.join("loop.ko"), out.stdout).map_err(|e| format!("writing loop.ko: {e}"))?;
        } else {
            // Built in, or missing: the config says which.
            let builtin = fs::read_to_string(&config).is_ok_and(|c| c.lines().any(|l| l == "CONFIG_BLK_DEV_LOOP=y"));
            if !builtin {
                return Err(format!("{package} has neither loop.ko nor CONFIG_BLK_DEV_LOOP=y"));
            }
        }
        fs::write(dir.join("release"), format!("{release}\n")).map_err(|e| format!("writing release: {e}"))?;
        Ok(())
    })();
    let _ = fs::remove_dir_all(&tree);
    if let Err(e) = result {
        let _ = fs::remove_dir_all(dir);
        return Err(format!("kernel {}: {e}", spec.name));
    }
    cached(spec, package, dir).ok_or(format!("kernel {}: unpacking {package} left no vmlinuz", spec.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_image_package_of_the_right_kernel() {
        let bookworm = "linux-image-cloud-amd64\n  Depends: linux-image-6.1.0-57-cloud-amd64\n";
        assert_eq!(image_package(bookworm, "6.1").as_deref(), Some("linux-image-6.1.0-57-cloud-amd64"));
        // The same metapackage on another release is not a 6.1 kernel.
        assert_eq!(image_package(bookworm, "5.10"), None);
        // "6.1" must not match 6.12.
        let bpo = "linux-image-6.12-cloud-amd64\n  Depends: linux-image-6.12.118+deb12-cloud-amd64\n";
        assert_eq!(image_package(bpo, "6.1"), None);
        assert_eq!(image_package(bpo, "6.12").as_deref(), Some("linux-image-6.12.118+deb12-cloud-amd64"));
        // Alternatives, virtual packages and other relations are skipped.
        let mixed = "linux-image-cloud-amd64\n  Recommends: linux-image-5.10.0-1-cloud-amd64\n \
                     |Depends: <linux-image-5.10-virtual>\n  Depends: linux-base\n \
                     |Depends: linux-image-5.10.0-46-cloud-amd64\n  Depends: linux-image-5.10.0-45-cloud-amd64\n";
        assert_eq!(image_package(mixed, "5.10").as_deref(), Some("linux-image-5.10.0-46-cloud-amd64"));
        assert_eq!(image_package("", "6.1"), None);
    }

    #[test]
    fn takes_the_mirror_from_the_system_sources() {
        let deb822 = "Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\n\
                      Components: main\n\nTypes: deb\n# a comment\nURIs: http://mirror.example/debian-security/\n\
                      Suites: bookworm-security\nComponents: main\n"
            .to_owned();
        assert_eq!(
            system_uri(std::slice::from_ref(&deb822), "bullseye-security"),
            "http://mirror.example/debian-security"
        );
        assert_eq!(system_uri(&[deb822], "bullseye"), "http://deb.debian.org/debian");
        let oneline = "# deb http://old/ x main\ndeb [arch=amd64 signed-by=/k.gpg] http://sec.example/ds bookworm-security main\n"
            .to_owned();
        assert_eq!(system_uri(&[oneline], "bullseye-security"), "http://sec.example/ds");
        assert_eq!(system_uri(&[], "bullseye-security"), "http://deb.debian.org/debian-security");
    }

    #[test]
    fn private_lists_age_from_the_stamp() {
        let dir = std::env::temp_dir().join(format!("xtask-vmtest-lists-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("lists")).unwrap();
        assert_eq!(lists_age(&dir), None, "no lists");
        fs::write(dir.join("lists/deb.debian.org_debian-security_dists_x_main_binary-amd64_Packages.lz4"), "").unwrap();
        assert_eq!(lists_age(&dir), None, "lists but never stamped");
        fs::write(dir.join(UPDATED_STAMP), "x").unwrap();
        assert!(lists_age(&dir).is_some_and(|age| age < LISTS_MAX_AGE));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn kernels_are_named_uniquely() {
        for k in KERNELS {
            assert!(std::ptr::eq(spec(k.name).unwrap(), k));
        }
        assert!(spec("4.19").unwrap_err().contains("5.10"));
    }
}
