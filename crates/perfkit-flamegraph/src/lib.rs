//! Flame graph SVGs from perfkit profiles, rendered by inferno.
//!
//! ```
//! use perfkit_flamegraph::{SvgOptions, render_svg};
//! use perfkit_profile::{Frame, Profile, Stack};
//! let mut profile = Profile::default();
//! profile.push(Stack::new("app", vec![Frame::user("main"), Frame::kernel("schedule")], 3));
//! let mut svg = Vec::new();
//! render_svg(&profile, &SvgOptions::new("demo"), &mut svg).unwrap();
//! let svg = String::from_utf8(svg).unwrap();
//! // inferno colours kernel frames by their `_[k]` suffix and shows the bare name.
//! assert!(svg.contains("schedule") && svg.contains("main"));
//! ```

use std::io::Write;

use inferno::flamegraph::{
    self, Options,
    color::{MultiPalette, Palette},
};
use perfkit_profile::Profile;

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

/// How to draw the flame graph.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SvgOptions {
    /// The title at the top.
    pub title: String,
    /// A line under the title.
    pub subtitle: Option<String>,
    /// What a count is, for tooltips: `samples`.
    pub count_name: String,
    /// Frames narrower than this many pixels are left out.
    pub min_width: f64,
}

impl SvgOptions {
    /// Options with this title and perfkit's defaults.
    pub fn new(title: impl Into<String>) -> Self {
        Self { title: title.into(), subtitle: None, count_name: "samples".into(), min_width: 0.1 }
    }
}

/// Renders `profile` as an interactive SVG (search, zoom, tooltips).
/// Kernel (`_[k]`) and inlined (`_[i]`) frames get their own hues.
pub fn render_svg<W: Write>(profile: &Profile, options: &SvgOptions, out: W) -> Result<(), FlamegraphError> {
    let lines: Vec<String> =
        profile.folded_counts().into_iter().map(|(stack, count)| format!("{stack} {count}")).collect();
    render_folded(lines.iter().map(String::as_str), options, out)
}

/// Renders folded lines (`frame;frame COUNT`) as an SVG.
pub fn render_folded<'a, I, W>(lines: I, options: &SvgOptions, out: W) -> Result<(), FlamegraphError>
where
    I: IntoIterator<Item = &'a str>,
    W: Write,
{
    let mut lines = lines.into_iter().peekable();
    if lines.peek().is_none() {
        return Err(FlamegraphError::Empty);
    }
    let mut opts = Options::default();
    opts.title = options.title.clone();
    opts.subtitle = options.subtitle.clone();
    opts.count_name = options.count_name.clone();
    opts.min_width = options.min_width;
    opts.colors = Palette::Multi(MultiPalette::Java);
    // Same input, same colours: profiles can be compared side by side.
    opts.hash = true;
    flamegraph::from_lines(&mut opts, lines, out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use perfkit_profile::{Frame, Stack};

    #[test]
    fn empty_profile_is_an_error() {
        let err = render_svg(&Profile::default(), &SvgOptions::new("t"), Vec::new()).unwrap_err();
        assert!(matches!(err, FlamegraphError::Empty));
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
}
