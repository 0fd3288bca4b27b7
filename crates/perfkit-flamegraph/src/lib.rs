//! Flame graph SVGs from perfkit profiles, rendered by inferno.
//!
//! ```
//! use perfkit_flamegraph::{SvgOptions, render_svg};
//! use perfkit_model::{Frame, Profile, Stack};
//! let mut profile = Profile::default();
//! profile.push(Stack::new("app", vec![Frame::user("main"), Frame::kernel("schedule")], 3));
//! let mut svg = Vec::new();
//! render_svg(&profile, &SvgOptions::new("demo"), &mut svg).unwrap();
//! let svg = String::from_utf8(svg).unwrap();
//! // inferno colours kernel frames by their `_[k]` suffix and shows the bare name.
//! assert!(svg.contains("schedule") && svg.contains("main"));
//! ```

use std::{io::Write, str::FromStr};

#[cfg(feature = "clap")]
pub mod flags;

pub use inferno::flamegraph::color::{MultiPalette, Palette};
use inferno::{
    differential,
    flamegraph::{self, Direction, Options},
};
use perfkit_model::{CountUnit, FrameKind, Profile, escape_control};

/// Why a flame graph could not be rendered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlamegraphError {
    /// The profile has no samples; an empty SVG would only mislead.
    #[error("the profile has no samples to draw")]
    Empty,
    /// Writing the SVG failed.
    #[error("writing the flame graph failed")]
    Io(#[from] std::io::Error),
}

/// How to draw the flame graph: the options of FlameGraph's
/// `flamegraph.pl` that users reach for.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SvgOptions {
    /// The title at the top.
    pub title: String,
    /// A line under the title.
    pub subtitle: Option<String>,
    /// What a count is, for tooltips: `samples`.
    pub count_name: String,
    /// Frames narrower than this percentage of the whole graph are left out
    /// (inferno's default, 0.01 %, keeps the SVG small for huge profiles).
    pub min_width: f64,
    /// The colour scheme; perfkit's default colours user frames warm,
    /// kernel (`_[k]`) frames orange, inlined (`_[i]`) frames aqua and JIT
    /// (`_[j]`) frames green; [`render_svg`] draws interpreted frames blue.
    pub palette: Palette,
    /// Icicle graph: roots at the top, stacks growing down.
    pub inverted: bool,
    /// Reverse each stack before merging: the innermost frames become the
    /// roots (a "callers" view of hot functions).
    pub reverse: bool,
    /// Width of the image in pixels; `None` fits the browser window.
    pub width: Option<usize>,
}

impl SvgOptions {
    /// Options with this title and perfkit's defaults.
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            subtitle: None,
            count_name: "samples".into(),
            min_width: 0.01,
            palette: Palette::Multi(MultiPalette::Java),
            inverted: false,
            reverse: false,
            width: None,
        }
    }

    /// Options for drawing `profile` under `title`: the subtitle says how
    /// it was taken ([`profile_subtitle`]), and the counts are named by the
    /// profile's unit.
    pub fn for_profile(title: impl Into<String>, profile: &Profile) -> Self {
        let mut o = Self::new(title);
        o.subtitle = Some(profile_subtitle(profile));
        if profile.meta.unit != CountUnit::Samples {
            o.count_name = profile.meta.unit.name().to_owned();
        }
        o
    }

    fn to_inferno(&self) -> Options<'static> {
        let mut opts = Options::default();
        // inferno escapes XML's markup characters; control characters
        // (which XML forbids outright) are made visible here.
        opts.title = escape_control(&self.title).into_owned();
        opts.subtitle = self.subtitle.as_deref().map(|s| escape_control(s).into_owned());
        opts.count_name = escape_control(&self.count_name).into_owned();
        opts.min_width = self.min_width;
        opts.colors = self.palette;
        opts.direction = if self.inverted { Direction::Inverted } else { Direction::Straight };
        opts.reverse_stack_order = self.reverse;
        opts.image_width = self.width;
        // Same input, same colours: profiles can be compared side by side.
        opts.hash = true;
        opts
    }
}

/// Parses a palette name as FlameGraph and inferno spell it: `hot`, `mem`,
/// `io`, `wakeup`, `java`, `js`, `perl`, `python`, `rust`, `red`, `green`,
/// `blue`, `aqua`, `yellow`, `purple`, `orange`.
pub fn parse_palette(name: &str) -> Result<Palette, String> {
    Palette::from_str(name).map_err(|_| {
        format!(
            "unknown palette {name:?} (one of: hot, mem, io, wakeup, java, js, perl, python, rust, red, green, \
             blue, aqua, yellow, purple, orange)"
        )
    })
}

/// Renders `profile` as an interactive SVG (search, zoom, tooltips).
/// Kernel (`_[k]`) and inlined (`_[i]`) frames get their own hues.
/// Interpreted frames (Python functions read from the interpreter, kind
/// [`FrameKind::Interpreted`]) are blue, apart from the native code around
/// them, as inferno's language palettes set a runtime's frames apart.
pub fn render_svg<W: Write>(profile: &Profile, options: &SvgOptions, out: W) -> Result<(), FlamegraphError> {
    let lines: Vec<String> =
        profile.folded_counts().into_iter().map(|(stack, count)| format!("{stack} {count}")).collect();
    let mut interpreted = inferno::flamegraph::color::PaletteMap::default();
    for frame in profile.stacks.iter().flat_map(|s| &s.frames).filter(|f| f.kind == FrameKind::Interpreted) {
        let name = escape_control(&frame.folded_name()).into_owned();
        if interpreted.get(&name).is_none() {
            let color = interpreted_color(&name);
            interpreted.insert(name, color);
        }
    }
    let mut opts = options.to_inferno();
    if interpreted.iter().next().is_some() {
        // Every other frame's colour is computed as without the map (and
        // kept in it: the map grows with the distinct names drawn).
        opts.palette_map = Some(&mut interpreted);
    }
    render_lines(lines.iter().map(String::as_str), opts, out)
}

/// A blue from the name's hash: the same function, the same colour.
fn interpreted_color(name: &str) -> inferno::flamegraph::color::Color {
    // FNV-1a: stable across runs and platforms.
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let v = (h % 1000) as f64 / 1000.0;
    inferno::flamegraph::color::Color {
        r: (60.0 + 60.0 * v) as u8,
        g: (110.0 + 70.0 * v) as u8,
        b: (215.0 + 40.0 * v) as u8,
    }
}

/// Renders folded lines (`frame;frame COUNT`) as an SVG. The lines are
/// borrowed, not copied (but for the rare line with control characters,
/// which are written as `\xNN` so that the SVG is always valid XML): memory
/// stays proportional to the input plus the merged frames inferno keeps.
pub fn render_folded<'a, I, W>(lines: I, options: &SvgOptions, out: W) -> Result<(), FlamegraphError>
where
    I: IntoIterator<Item = &'a str>,
    W: Write,
{
    render_lines(lines, options.to_inferno(), out)
}

fn render_lines<'a, I, W>(lines: I, mut opts: Options<'_>, out: W) -> Result<(), FlamegraphError>
where
    I: IntoIterator<Item = &'a str>,
    W: Write,
{
    let mut lines = lines.into_iter().filter(|l| !l.trim().is_empty()).map(escape_control).peekable();
    if lines.peek().is_none() {
        return Err(FlamegraphError::Empty);
    }
    // inferno takes `&str` lines: the escaped ones are borrowed from here.
    let lines: Vec<std::borrow::Cow<'a, str>> = lines.collect();
    flamegraph::from_lines(&mut opts, lines.iter().map(|l| &**l), out)?;
    Ok(())
}

/// How to compare two profiles.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct DiffOptions {
    /// Scale the first profile's counts to the second's total, so profiles
    /// of different lengths compare by share rather than by count.
    pub normalize: bool,
    /// Ignore hexadecimal addresses in frame names (JIT frames).
    pub strip_hex: bool,
    /// Draw the frames at their size in the first profile instead of the
    /// second (shows what disappeared).
    pub negate: bool,
}

/// Renders a differential flame graph of two folded profiles: frames are
/// sized by the AFTER profile (BEFORE with `negate`) and coloured by the
/// change, red for growth and blue for shrinkage, as in FlameGraph's
/// `difffolded.pl`.
pub fn render_diff<W: Write>(
    before: &str,
    after: &str,
    options: &SvgOptions,
    diff: &DiffOptions,
    out: W,
) -> Result<(), FlamegraphError> {
    let diff_opts = differential::Options { normalize: diff.normalize, strip_hex: diff.strip_hex };
    let mut lines = Vec::new();
    differential::from_readers(diff_opts, before.as_bytes(), after.as_bytes(), &mut lines)?;
    if lines.is_empty() {
        return Err(FlamegraphError::Empty);
    }
    let text = String::from_utf8_lossy(&lines);
    let text = escape_control_lines(&text);
    let mut opts = options.to_inferno();
    opts.negate_differentials = diff.negate;
    flamegraph::from_lines(&mut opts, text.lines(), out)?;
    Ok(())
}

/// `text` with the control characters of each line escaped (line breaks
/// kept).
fn escape_control_lines(text: &str) -> std::borrow::Cow<'_, str> {
    if text.lines().all(|l| matches!(escape_control(l), std::borrow::Cow::Borrowed(_))) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 64);
    for line in text.lines() {
        out.push_str(&escape_control(line));
        out.push('\n');
    }
    std::borrow::Cow::Owned(out)
}

/// How a profile was taken, in a line: `N samples in S s at F Hz`, with
/// the stacks lost and samples dropped when there were any.
pub fn profile_subtitle(profile: &Profile) -> String {
    let m = &profile.meta;
    let mut s = format!("{} {} in {:.1} s", profile.total_samples(), m.unit.name(), m.duration.as_secs_f64());
    if m.frequency_hz > 0 {
        s.push_str(&format!(" at {} Hz", m.frequency_hz));
    }
    if m.lost_stacks > 0 || m.dropped_samples > 0 {
        s.push_str(&format!(", {} stacks lost, {} samples dropped", m.lost_stacks, m.dropped_samples));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use perfkit_model::{Frame, Stack};

    #[test]
    fn a_profile_subtitle_says_how_it_was_taken() {
        let mut profile = Profile::from_folded([("a;b".to_owned(), 3), ("a;c".to_owned(), 2)]);
        profile.meta.duration = std::time::Duration::from_millis(2540);
        assert_eq!(profile_subtitle(&profile), "5 samples in 2.5 s");
        profile.meta.frequency_hz = 99;
        profile.meta.lost_stacks = 1;
        assert_eq!(profile_subtitle(&profile), "5 samples in 2.5 s at 99 Hz, 1 stacks lost, 0 samples dropped");
        let o = SvgOptions::for_profile("t", &profile);
        assert_eq!(
            (o.subtitle.as_deref(), o.count_name.as_str()),
            (Some(profile_subtitle(&profile).as_str()), "samples")
        );
        profile.meta.unit = CountUnit::Microseconds;
        let o = SvgOptions::for_profile("t", &profile);
        assert_eq!(o.count_name, CountUnit::Microseconds.name());
        assert!(o.subtitle.unwrap().contains(CountUnit::Microseconds.name()));
    }

    #[test]
    fn empty_profile_is_an_error() {
        let err = render_svg(&Profile::default(), &SvgOptions::new("t"), Vec::new()).unwrap_err();
        assert!(matches!(err, FlamegraphError::Empty));
    }

    /// The fill of the first rectangle drawn for `name`.
    fn fill_of(svg: &str, name: &str) -> (u8, u8, u8) {
        let at = svg.find(&format!("<title>{name} (")).unwrap_or_else(|| panic!("{name} not drawn"));
        let rest = &svg[at..];
        let rgb = &rest[rest.find("fill=\"rgb(").unwrap() + 10..];
        let v: Vec<u8> = rgb[..rgb.find(')').unwrap()].split(',').map(|c| c.trim().parse().unwrap()).collect();
        (v[0], v[1], v[2])
    }

    #[test]
    fn interpreted_frames_are_blue_and_the_rest_keep_their_colours() {
        let mut profile = Profile::default();
        profile.push(Stack::new(
            "python3",
            vec![
                Frame::user("main"),
                Frame::interpreted("caller_one"),
                Frame::interpreted("Worker.hot_alpha"),
                Frame::kernel("schedule"),
            ],
            3,
        ));
        let mut with = Vec::new();
        render_svg(&profile, &SvgOptions::new("t"), &mut with).unwrap();
        let with = String::from_utf8(with).unwrap();
        for name in ["caller_one", "Worker.hot_alpha"] {
            let (r, g, b) = fill_of(&with, name);
            assert!(b > 200 && b > g && g > r, "{name}: rgb({r},{g},{b})");
        }
        // Native frames are coloured as with no interpreted frame at all.
        let mut native = Profile::default();
        native.push(Stack::new("python3", vec![Frame::user("main"), Frame::kernel("schedule")], 3));
        let mut without = Vec::new();
        render_svg(&native, &SvgOptions::new("t"), &mut without).unwrap();
        let without = String::from_utf8(without).unwrap();
        assert_eq!(fill_of(&with, "main"), fill_of(&without, "main"));
        assert_eq!(fill_of(&with, "schedule"), fill_of(&without, "schedule"));
    }

    #[test]
    fn svg_has_title_frames_and_escapes_names() {
        let mut p = Profile::default();
        p.push(Stack::new("app", vec![Frame::user("main"), Frame::user("a<b>&\"c\"")], 2));
        let mut opts = SvgOptions::new("perfkit profile: ./app --x");
        opts.subtitle = Some("2 samples".into());
        let mut out = Vec::new();
        render_svg(&p, &opts, &mut out).unwrap();
        let svg = String::from_utf8(out).unwrap();
        assert!(svg.starts_with("<?xml"));
        assert!(svg.contains("perfkit profile: ./app --x"));
        assert!(svg.contains("2 samples"));
        assert!(svg.contains("a&lt;b&gt;&amp;"), "names are escaped");
        assert!(!svg.contains("a<b>"));
    }

    #[test]
    fn hostile_names_render_as_text() {
        let lines =
            ["app;<script>alert(1)</script>;x\" onload=\"alert(2) 3", "app;&amp;<img src=x onerror=alert(3)> 1"];
        let mut out = Vec::new();
        render_folded(lines, &SvgOptions::new("<script>t</script>"), &mut out).unwrap();
        let svg = String::from_utf8(out).unwrap();
        // The only script elements are inferno's own.
        let scripts = svg.matches("<script").count();
        assert_eq!(scripts, 1, "{svg}");
        assert!(!svg.contains("<img") && !svg.contains("x\" onload"), "{svg}");
        assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    }

    #[test]
    fn control_characters_never_reach_the_svg() {
        let lines = ["\u{1b}[31mred\u{7};main;x\u{0}y\u{7f} 3", "app;\u{9b}c1 1"];
        let mut opts = SvgOptions::new("title \u{1b}[1m");
        opts.subtitle = Some("sub\u{7}".into());
        let mut out = Vec::new();
        render_folded(lines, &opts, &mut out).unwrap();
        let svg = String::from_utf8(out).unwrap();
        let bad: Vec<char> = svg.chars().filter(|&c| c.is_control() && !matches!(c, '\n' | '\t' | '\r')).collect();
        assert!(bad.is_empty(), "{bad:?}");
        assert!(svg.contains("\\x1b[31mred\\x07") && svg.contains("x\\x00y\\x7f"), "{svg}");
        let mut out = Vec::new();
        render_diff("a;\u{1b}b 1\n", "a;\u{1b}b 2\n", &opts, &DiffOptions::default(), &mut out).unwrap();
        let svg = String::from_utf8(out).unwrap();
        assert!(svg.contains("\\x1bb") && !svg.contains('\u{1b}'));
    }

    #[test]
    fn options_shape_the_graph() {
        let lines = ["app;main;hot 9", "app;main;cold 1"];
        let render = |opts: &SvgOptions| {
            let mut out = Vec::new();
            render_folded(lines, opts, &mut out).unwrap();
            String::from_utf8(out).unwrap()
        };
        let mut opts = SvgOptions::new("t");
        opts.count_name = "ticks".into();
        opts.palette = parse_palette("mem").unwrap();
        let svg = render(&opts);
        assert!(svg.contains("9 ticks"), "count name in tooltips");
        opts.inverted = true;
        assert!(render(&opts).contains("inverted = true") || render(&opts) != svg, "icicle differs");
        // Narrow frames drop out with a large minimum width.
        opts.min_width = 20.0;
        let pruned = render(&opts);
        assert!(!pruned.contains("cold (") && pruned.contains("hot ("));
        assert!(parse_palette("plaid").is_err());
    }

    #[test]
    fn diff_colours_growth_red_and_shrinkage_blue() {
        let before = "app;main;a 50\napp;main;b 50\n";
        let after = "app;main;a 90\napp;main;b 10\n";
        let mut out = Vec::new();
        render_diff(before, after, &SvgOptions::new("diff"), &DiffOptions::default(), &mut out).unwrap();
        let svg = String::from_utf8(out).unwrap();
        let fill_of = |name: &str| {
            let at = svg.find(&format!("<title>{name} (")).unwrap();
            let rest = &svg[at..];
            let fill = &rest[rest.find("fill=\"").unwrap() + 6..];
            fill[..fill.find('"').unwrap()].to_owned()
        };
        // rgb(r,g,b): red dominates for growth, blue for shrinkage.
        let rgb = |s: String| -> Vec<u32> {
            s.trim_start_matches("rgb(").trim_end_matches(')').split(',').map(|v| v.trim().parse().unwrap()).collect()
        };
        let a = rgb(fill_of("a"));
        let b = rgb(fill_of("b"));
        assert!(a[0] > a[2], "a grew: {a:?}");
        assert!(b[2] > b[0], "b shrank: {b:?}");
    }
}
