//! perfkit's flame graphs in a real browser: headless Chromium opens the
//! SVG as a user does, searches, zooms, and hovers over hostile names.

use std::{fs, path::Path, process::Command};

use crate::util::*;

/// Runs after inferno's own `init` (on load): drives the page as a user
/// would and records what happened in a `data-result` attribute that
/// `--dump-dom` prints.
const PROBE: &str = r#"<script type="text/ecmascript"><![CDATA[
var probeErrors = [];
window.addEventListener('error', function (e) { probeErrors.push(String(e.message)); });
window.addEventListener('load', function () { setTimeout(function () {
  var r = { pwned: window.__pwned || 0, errors: probeErrors };
  var groups = Array.prototype.slice.call(document.getElementById('frames').children);
  function name(g) { var t = g.querySelector('title'); return t ? t.textContent : ''; }
  function find(prefix) { return groups.filter(function (g) { return name(g).indexOf(prefix + ' (') === 0; })[0]; }
  function highlighted() {
    return groups.filter(function (g) { return g.querySelector('rect').getAttribute('fill') === searchcolor; }).map(name);
  }
  r.frames = groups.length;
  // The ?s= parameter searches on load.
  r.initial_highlighted = highlighted();
  r.initial_matched = document.getElementById('matched').textContent;
  // While a search is shown the button reads "Reset Search": click it.
  function clickSearch() { document.getElementById('search').dispatchEvent(new MouseEvent('click', { bubbles: true })); }
  clickSearch();
  // Hover over every frame, hostile ones included.
  groups.forEach(function (g) { g.dispatchEvent(new MouseEvent('mouseover', { bubbles: true })); });
  groups.filter(function (g) { return name(g).indexOf('<script>') === 0; })[0]
    .dispatchEvent(new MouseEvent('mouseover', { bubbles: true }));
  r.hovered_details = document.getElementById('details').textContent;
  // The search box: search_prompt() asks with prompt(); answer it.
  window.prompt = function () { return 'hot_a'; };
  clickSearch();
  r.matched = document.getElementById('matched').textContent;
  r.highlighted = highlighted();
  clickSearch();
  // Click a frame to zoom into it.
  var a = find('parent_a'), b = find('hot_b');
  r.a_width_before = parseFloat(a.querySelector('rect').getAttribute('width'));
  a.querySelector('rect').dispatchEvent(new MouseEvent('click', { bubbles: true }));
  r.a_width_after = parseFloat(a.querySelector('rect').getAttribute('width'));
  r.b_hidden = b.classList.contains('hide');
  r.unzoom_shown = !document.getElementById('unzoom').classList.contains('hide');
  r.pwned_after = window.__pwned || 0;
  document.documentElement.setAttribute('data-result', JSON.stringify(r));
}, 50); });
]]></script>"#;

fn chromium_dump(url: &str, profile_dir: &Path) -> String {
    let out = run(Command::new("chromium").args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--virtual-time-budget=5000",
        &format!("--user-data-dir={}", profile_dir.display()),
        "--dump-dom",
        url,
    ]));
    assert!(out.status.success(), "chromium failed");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn the_svg_searches_zooms_and_never_runs_names_as_script() {
    if !tools(&["chromium"]) {
        return;
    }
    let dir = scratch_dir();
    let folded = dir.path().join("hostile.folded");
    fs::write(
        &folded,
        "app;main;parent_a;hot_a 30\n\
         app;main;parent_b;hot_b 10\n\
         app;main;<script>window.__pwned=1</script> 2\n\
         app;main;<img src=x onerror=\"window.__pwned=2\"> 2\n\
         app;main;\"><svg onload=\"window.__pwned=3\"> 2\n\
         app;main;]]><script>window.__pwned=4</script> 2\n",
    )
    .unwrap();
    let svg = dir.path().join("flame.svg");
    let out = run(perfkit().args(["flamegraph", "-o"]).arg(&svg).arg(&folded));
    assert!(out.status.success());

    let text = fs::read_to_string(&svg).unwrap();
    let end = text.rfind("</svg>").unwrap();
    let probed = dir.path().join("probed.svg");
    fs::write(&probed, format!("{}{PROBE}</svg>", &text[..end])).unwrap();

    let dom = chromium_dump(&format!("file://{}?s=hot_b", probed.display()), &dir.path().join("chromium"));
    let attr = dom.split("data-result=\"").nth(1).unwrap_or_else(|| panic!("the probe did not run:\n{dom}"));
    let json = attr[..attr.find('"').unwrap()].replace("&quot;", "\"").replace("&amp;", "&");
    let r: serde_json::Value = serde_json::from_str(&json).unwrap();
    eprintln!("{r:#}");

    assert_eq!(r["errors"], serde_json::json!([]), "script errors");
    assert_eq!(r["pwned"], 0, "a symbol name ran as script");
    assert_eq!(r["pwned_after"], 0, "hovering a symbol name ran it as script");
    assert!(r["frames"].as_u64().unwrap() >= 9);
    let names = |v: &serde_json::Value| -> Vec<String> {
        v.as_array().unwrap().iter().map(|n| n.as_str().unwrap().split(" (").next().unwrap().to_owned()).collect()
    };
    assert_eq!(names(&r["initial_highlighted"]), ["hot_b"], "?s=hot_b highlights on load");
    assert_eq!(names(&r["highlighted"]), ["hot_a"], "the search box highlights the function");
    assert!(r["matched"].as_str().unwrap().contains("62.5"), "hot_a is 30 of 48 samples: {}", r["matched"]);
    let (before, after) = (r["a_width_before"].as_f64().unwrap(), r["a_width_after"].as_f64().unwrap());
    assert!(after > before * 1.4, "clicking parent_a zooms it: width {before} -> {after}");
    assert_eq!(r["b_hidden"], true, "zooming hides frames outside parent_a");
    assert_eq!(r["unzoom_shown"], true);
    assert!(r["hovered_details"].as_str().unwrap().contains("window.__pwned"), "names show as text");
}
