//! The probe expressions of trace and argdist, in the subset of bcc's
//! syntax they take: parsed here without I/O, compiled against a resolved
//! probe (its arguments, its tracepoint record or its USDT operands) into
//! what the kernel reads at each hit and what user space computes from it.
//!
//! trace: `[p:|r:]LIB:FUNC[(SIGNATURE)] [(FILTER)] ["FORMAT"[, ARG...]]`,
//! `t:CATEGORY:NAME ...`, `u:LIB:[PROVIDER:]NAME ...`.
//!
//! argdist: `{p,r,t,u}:SPEC(SIGNATURE)[:TYPE[,TYPE...]:EXPR[,EXPR...][:FILTER]][#LABEL]`.
//!
//! Expressions: integers, `"strings"`, `arg1`..`arg6`, `retval` or
//! `$retval`, `$latency` (nanoseconds, return probes), `$PID`, `$TID`,
//! the signature's parameter names, `args->FIELD` (or `tp.FIELD`) of a
//! tracepoint; `! - + * / % & | ^ << >> == != < <= > >= && ||` and
//! parentheses. A string compares with `==` and `!=`.

use std::{collections::HashMap, fmt};

use perfkit_probes_common::trace::{
    DEREFS, Deref, RECORD_BYTES, STR_DATA_LOC, STR_DEREF, STR_FIELD, STR_LEN, STR_REG, STR_SLOTS, StrSource, TraceProbe,
};

use super::probespec::{ProbeSpec, SpecError};

/// Longest expression or probe text accepted.
const MAX_TEXT: usize = 4096;
/// Deepest nesting of an expression.
const MAX_DEPTH: usize = 64;
/// The most operators one expression holds. Compiling and evaluating walk
/// the tree recursively, and a chain such as `1+1+...+1` is as deep as it
/// is long: 2000 of them overflowed the main thread's stack.
const MAX_OPERATORS: usize = 128;

/// `struct pt_regs` words (x86-64) of the first six integer arguments.
pub const ARG_REGS: [u32; 6] = [14, 13, 12, 11, 9, 8];
/// The `struct pt_regs` word of the return value (`rax`).
pub const RET_REG: u32 = 10;

/// Why a probe expression was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExprError {
    /// Not in the syntax taken.
    #[error("{text:?}: {why}")]
    Syntax {
        /// The text.
        text: String,
        /// What is wrong.
        why: String,
    },
    /// The probe specification itself.
    #[error(transparent)]
    Spec(#[from] SpecError),
}

fn syntax(text: &str, why: impl Into<String>) -> ExprError {
    let mut text = text.to_owned();
    if text.len() > 200 {
        let mut end = 200;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    ExprError::Syntax { text, why: why.into() }
}

/// A C type of a signature or of an argdist value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CType {
    /// A signed integer of this many bytes.
    Signed(u8),
    /// An unsigned integer of this many bytes.
    Unsigned(u8),
    /// `char *`: a NUL-terminated string.
    Str,
}

impl CType {
    /// Parses `int`, `u32`, `size_t`, `char *`...
    pub fn parse(text: &str) -> Option<Self> {
        let t: String = text.split_whitespace().collect::<Vec<_>>().join(" ").replace(" *", "*");
        let t = t.trim_start_matches("const ").replace("const ", "").replace("__user ", "");
        Some(match t.as_str() {
            "char*" | "unsigned char*" | "u8*" => Self::Str,
            "char" | "s8" | "i8" | "signed char" | "int8_t" => Self::Signed(1),
            "unsigned char" | "u8" | "uint8_t" | "bool" | "_Bool" => Self::Unsigned(1),
            "short" | "s16" | "i16" | "int16_t" | "short int" => Self::Signed(2),
            "unsigned short" | "u16" | "uint16_t" | "unsigned short int" => Self::Unsigned(2),
            "int" | "s32" | "i32" | "int32_t" | "signed" | "signed int" | "pid_t" => Self::Signed(4),
            "unsigned" | "unsigned int" | "u32" | "uint32_t" | "uid_t" | "gid_t" => Self::Unsigned(4),
            "long" | "long int" | "long long" | "s64" | "i64" | "int64_t" | "ssize_t" | "off_t" | "long long int" => {
                Self::Signed(8)
            }
            "unsigned long"
            | "unsigned long long"
            | "u64"
            | "uint64_t"
            | "size_t"
            | "uintptr_t"
            | "unsigned long int"
            | "unsigned long long int" => Self::Unsigned(8),
            _ if t.ends_with('*') => Self::Unsigned(8),
            _ => return None,
        })
    }

    /// A raw register or memory word read as this type.
    pub(crate) fn cast(self, raw: u64) -> i128 {
        match self {
            Self::Signed(1) => raw as i8 as i128,
            Self::Signed(2) => raw as i16 as i128,
            Self::Signed(4) => raw as i32 as i128,
            Self::Signed(_) => raw as i64 as i128,
            Self::Unsigned(1) => raw as u8 as i128,
            Self::Unsigned(2) => raw as u16 as i128,
            Self::Unsigned(4) => raw as u32 as i128,
            Self::Unsigned(_) | Self::Str => raw as i128,
        }
    }
}

/// A parameter of a signature: `int a`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Param {
    /// Its type.
    pub ty: CType,
    /// Its name.
    pub name: String,
}

/// Parses a signature: `int a, char *s` (empty: none).
pub fn parse_signature(text: &str) -> Result<Vec<Param>, ExprError> {
    let text = text.trim();
    if text.is_empty() || text == "void" {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for p in text.split(',') {
        let p = p.trim();
        let split = p.rfind(['*', ' ']).ok_or_else(|| syntax(p, "a parameter is TYPE NAME: `int a`, `char *s`"))?;
        let (ty, name) = (&p[..=split], p[split + 1..].trim());
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(syntax(p, "a parameter is TYPE NAME: `int a`, `char *s`"));
        }
        let ty = CType::parse(ty).ok_or_else(|| {
            syntax(p, "unknown type: integers (int, long, u32, size_t...), char * and other pointers are taken")
        })?;
        out.push(Param { ty, name: name.to_owned() });
    }
    if out.len() > ARG_REGS.len() {
        return Err(syntax(text, format!("at most {} parameters (the argument registers)", ARG_REGS.len())));
    }
    Ok(out)
}

/// A binary operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
    /// `&`
    And,
    /// `|`
    Or,
    /// `^`
    Xor,
    /// `<<`
    Shl,
    /// `>>`
    Shr,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `&&`
    LogAnd,
    /// `||`
    LogOr,
}

/// A parsed expression.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Expr {
    /// An integer.
    Int(i128),
    /// A string literal.
    Str(String),
    /// A name: `arg1`, `retval`, `$latency`, a parameter.
    Var(String),
    /// A tracepoint field: `args->FIELD`.
    Field(String),
    /// `-x`
    Neg(Box<Expr>),
    /// `!x`
    Not(Box<Expr>),
    /// `x OP y`
    Binary(BinOp, Box<Expr>, Box<Expr>),
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Int(i128),
    Str(String),
    Ident(String),
    Op(&'static str),
}

const OPS: [&str; 24] = [
    "->", "==", "!=", "<=", ">=", "&&", "||", "<<", ">>", "+", "-", "*", "/", "%", "&", "|", "^", "<", ">", "!", "(",
    ")", ".", ",",
];

fn lex(text: &str) -> Result<Vec<Tok>, ExprError> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c.is_ascii_digit() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric()) {
                i += 1;
            }
            let word = text[start..i].trim_end_matches(['u', 'U', 'l', 'L']);
            let v = if let Some(h) = word.strip_prefix("0x").or_else(|| word.strip_prefix("0X")) {
                i128::from_str_radix(h, 16)
            } else {
                word.parse::<i128>()
            }
            .ok()
            .filter(|v| *v <= u64::MAX as i128)
            .ok_or_else(|| syntax(text, format!("{:?} is not an integer of 64 bits", &text[start..i])))?;
            out.push(Tok::Int(v));
        } else if c.is_ascii_alphabetic() || c == b'_' || c == b'$' {
            let start = i;
            i += 1;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(Tok::Ident(text[start..i].to_owned()));
        } else if c == b'"' {
            let (s, end) = string_literal(text, i)?;
            out.push(Tok::Str(s));
            i = end;
        } else if let Some(op) = OPS.iter().find(|op| text[i..].starts_with(**op)) {
            out.push(Tok::Op(op));
            i += op.len();
        } else {
            let ch = text[i..].chars().next().unwrap_or('?');
            return Err(syntax(text, format!("unexpected {ch:?}")));
        }
    }
    Ok(out)
}

/// The string literal opening at byte `at` of `text` (a `"`): its value
/// (`\n \t \\ \"` unescaped) and the byte after its closing quote.
fn string_literal(text: &str, at: usize) -> Result<(String, usize), ExprError> {
    let mut out = String::new();
    let mut chars = text[at + 1..].char_indices();
    while let Some((k, c)) = chars.next() {
        match c {
            '"' => return Ok((out, at + 1 + k + 1)),
            '\\' => match chars.next().map(|(_, c)| c) {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('\\') => out.push('\\'),
                Some('"') => out.push('"'),
                Some(c) => return Err(syntax(text, format!("unknown escape \\{c}"))),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(syntax(text, "a string literal is not closed"))
}

struct Parser<'a> {
    text: &'a str,
    toks: Vec<Tok>,
    at: usize,
    depth: usize,
    operators: usize,
}

impl Parser<'_> {
    /// Counts one more operator node, refusing past [`MAX_OPERATORS`].
    fn operator(&mut self) -> Result<(), ExprError> {
        self.operators += 1;
        if self.operators > MAX_OPERATORS {
            return Err(syntax(self.text, format!("more than {MAX_OPERATORS} operators")));
        }
        Ok(())
    }

    fn peek_op(&self) -> Option<&'static str> {
        match self.toks.get(self.at) {
            Some(Tok::Op(o)) => Some(o),
            _ => None,
        }
    }

    fn binary(&mut self, level: usize) -> Result<Expr, ExprError> {
        const LEVELS: [&[(&str, BinOp)]; 10] = [
            &[("||", BinOp::LogOr)],
            &[("&&", BinOp::LogAnd)],
            &[("|", BinOp::Or)],
            &[("^", BinOp::Xor)],
            &[("&", BinOp::And)],
            &[("==", BinOp::Eq), ("!=", BinOp::Ne)],
            &[("<=", BinOp::Le), (">=", BinOp::Ge), ("<", BinOp::Lt), (">", BinOp::Gt)],
            &[("<<", BinOp::Shl), (">>", BinOp::Shr)],
            &[("+", BinOp::Add), ("-", BinOp::Sub)],
            &[("*", BinOp::Mul), ("/", BinOp::Div), ("%", BinOp::Rem)],
        ];
        if level == LEVELS.len() {
            return self.unary();
        }
        let mut left = self.binary(level + 1)?;
        while let Some(op) = self.peek_op() {
            let Some(&(_, b)) = LEVELS[level].iter().find(|(s, _)| *s == op) else { break };
            self.at += 1;
            self.operator()?;
            let right = self.binary(level + 1)?;
            left = Expr::Binary(b, Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, ExprError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(syntax(self.text, "nested too deeply"));
        }
        let out = match self.peek_op() {
            Some("-") => {
                self.at += 1;
                self.operator()?;
                Expr::Neg(Box::new(self.unary()?))
            }
            Some("!") => {
                self.at += 1;
                self.operator()?;
                Expr::Not(Box::new(self.unary()?))
            }
            _ => self.primary()?,
        };
        self.depth -= 1;
        Ok(out)
    }

    fn primary(&mut self) -> Result<Expr, ExprError> {
        let tok = self.toks.get(self.at).cloned();
        self.at += 1;
        match tok {
            Some(Tok::Int(v)) => Ok(Expr::Int(v)),
            Some(Tok::Str(s)) => Ok(Expr::Str(s)),
            Some(Tok::Op("(")) => {
                let e = self.binary(0)?;
                if self.peek_op() != Some(")") {
                    return Err(syntax(self.text, "a parenthesis is not closed"));
                }
                self.at += 1;
                Ok(e)
            }
            Some(Tok::Ident(name)) => {
                if (name == "args" && self.peek_op() == Some("->")) || (name == "tp" && self.peek_op() == Some(".")) {
                    self.at += 1;
                    match self.toks.get(self.at) {
                        Some(Tok::Ident(f)) => {
                            self.at += 1;
                            Ok(Expr::Field(f.clone()))
                        }
                        _ => Err(syntax(self.text, "args-> is followed by a field name")),
                    }
                } else {
                    Ok(Expr::Var(name))
                }
            }
            Some(Tok::Op(o)) => Err(syntax(self.text, format!("unexpected {o:?}"))),
            None => Err(syntax(self.text, "the expression ends too early")),
        }
    }
}

impl Expr {
    /// Parses one expression.
    pub fn parse(text: &str) -> Result<Self, ExprError> {
        if text.len() > MAX_TEXT {
            return Err(syntax(text, format!("longer than {MAX_TEXT} bytes")));
        }
        let mut p = Parser { text, toks: lex(text)?, at: 0, depth: 0, operators: 0 };
        if p.toks.is_empty() {
            return Err(syntax(text, "empty expression"));
        }
        let e = p.binary(0)?;
        if p.at != p.toks.len() {
            return Err(syntax(text, "unexpected text after the expression"));
        }
        Ok(e)
    }
}

/// The characters of `text` outside string literals (the quotes
/// included), each with its byte index and the parenthesis depth before it.
fn outside_strings(text: &str) -> impl Iterator<Item = (usize, char, i32)> + '_ {
    let (mut depth, mut in_str, mut escape) = (0i32, false, false);
    text.char_indices().filter_map(move |(i, c)| {
        if in_str {
            match c {
                _ if escape => escape = false,
                '\\' => escape = true,
                '"' => in_str = false,
                _ => {}
            }
            return None;
        }
        let before = depth;
        match c {
            '"' => in_str = true,
            '(' => depth += 1,
            ')' => depth -= 1,
            _ => {}
        }
        Some((i, c, before))
    })
}

/// Splits `text` at top-level `sep` (outside parentheses and strings).
fn split_top(text: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c, depth) in outside_strings(text) {
        if c == sep && depth == 0 {
            out.push(&text[start..i]);
            start = i + c.len_utf8();
        }
    }
    out.push(&text[start..]);
    out
}

/// The index of the `)` closing the `(` at `open`.
fn closing(text: &str, open: usize) -> Option<usize> {
    outside_strings(&text[open..]).find(|&(_, c, depth)| c == ')' && depth == 1).map(|(i, ..)| open + i)
}

/// Parses the probe part (`p:LIB:FUNC`, `r:LIB:FUNC`, `t:...`, `u:...`):
/// the spec and whether it is a return probe.
fn parse_probe(spec: &str) -> Result<(ProbeSpec, bool), ExprError> {
    if let Some(rest) = spec.strip_prefix("r:") {
        let s = ProbeSpec::parse(rest)?;
        if !matches!(s, ProbeSpec::Uprobe { .. }) {
            return Err(syntax(spec, "a return probe is r:LIB:FUNC or r:PATH:FUNC"));
        }
        return Ok((s, true));
    }
    Ok((ProbeSpec::parse(spec)?, false))
}

/// A printf conversion.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Conv {
    /// `d u x X s c p`, with `l`/`ll` folded into `long`.
    kind: char,
    long: bool,
    left: bool,
    zero: bool,
    width: usize,
}

/// A piece of a format.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Lit(String),
    Conv(Conv),
}

/// A printf-style format: `%d %i %u %x %X %s %c %p %%`, with `l`, `ll`,
/// `h`, `hh`, `z` lengths, `-` and `0` flags and a width.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Format {
    pieces: Vec<Piece>,
}

impl Format {
    /// Parses a format.
    pub fn parse(text: &str) -> Result<Self, ExprError> {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                lit.push(c);
                continue;
            }
            if chars.peek() == Some(&'%') {
                chars.next();
                lit.push('%');
                continue;
            }
            let (mut left, mut zero, mut width, mut long) = (false, false, 0usize, false);
            while let Some(&f) = chars.peek() {
                match f {
                    '-' => left = true,
                    '0' if width == 0 => zero = true,
                    _ => break,
                }
                chars.next();
            }
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                width = width.saturating_mul(10).saturating_add(d as usize).min(256);
                chars.next();
            }
            while let Some(&l) = chars.peek() {
                match l {
                    'l' | 'z' | 'j' => long = true,
                    'h' => {}
                    _ => break,
                }
                chars.next();
            }
            let kind = match chars.next() {
                Some(k @ ('d' | 'i' | 'u' | 'x' | 'X' | 's' | 'c' | 'p')) => k,
                Some(k) => {
                    return Err(syntax(text, format!("%{k} is not taken: %d %i %u %x %X %s %c %p, with l or ll")));
                }
                None => return Err(syntax(text, "the format ends in %")),
            };
            if !lit.is_empty() {
                pieces.push(Piece::Lit(std::mem::take(&mut lit)));
            }
            pieces.push(Piece::Conv(Conv { kind, long, left, zero, width }));
        }
        if !lit.is_empty() {
            pieces.push(Piece::Lit(lit));
        }
        Ok(Self { pieces })
    }

    fn convs(&self) -> impl Iterator<Item = &Conv> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Conv(c) => Some(c),
            Piece::Lit(_) => None,
        })
    }
}

/// One trace probe as written: `'r:/bin/app:f (retval > 0) "%d", retval'`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TraceProbeSpec {
    /// The text as written.
    pub text: String,
    /// Where it attaches.
    pub spec: ProbeSpec,
    /// A return probe (`r:`).
    pub ret: bool,
    /// The signature, if given.
    pub params: Vec<Param>,
    /// Hits shown only when this holds.
    pub filter: Option<Expr>,
    /// The message's format (`None`: no message).
    pub format: Option<Format>,
    /// The format's arguments.
    pub args: Vec<Expr>,
}

impl TraceProbeSpec {
    /// Parses one probe of trace.
    pub fn parse(text: &str) -> Result<Self, ExprError> {
        if text.len() > MAX_TEXT || text.contains('\0') {
            return Err(syntax(text, format!("longer than {MAX_TEXT} bytes, or holds a NUL byte")));
        }
        let t = text.trim();
        // The probe: up to white space or a quote, with a signature in
        // parentheses right after it.
        let mut end = t.find(|c: char| c.is_whitespace() || c == '"' || c == '(').unwrap_or(t.len());
        let probe = &t[..end];
        let mut params = Vec::new();
        if t[end..].starts_with('(') {
            let close = closing(t, end).ok_or_else(|| syntax(text, "the signature's parenthesis is not closed"))?;
            params = parse_signature(&t[end + 1..close])?;
            end = close + 1;
        }
        let (spec, ret) = parse_probe(probe)?;
        let mut rest = t[end..].trim_start();
        let mut filter = None;
        if rest.starts_with('(') {
            let close = closing(rest, 0).ok_or_else(|| syntax(text, "the filter's parenthesis is not closed"))?;
            filter = Some(Expr::parse(&rest[1..close])?);
            rest = rest[close + 1..].trim_start();
        }
        let (mut format, mut args) = (None, Vec::new());
        if rest.starts_with('"') {
            let (f, after) = string_literal(rest, 0)?;
            format = Some(Format::parse(&f)?);
            let tail = rest[after..].trim();
            if !tail.is_empty() {
                let tail = tail
                    .strip_prefix(',')
                    .ok_or_else(|| syntax(text, "the format's arguments follow it after a comma"))?;
                for a in split_top(tail, ',') {
                    args.push(Expr::parse(a.trim())?);
                }
            }
        } else if !rest.is_empty() {
            return Err(syntax(
                text,
                "expected PROBE [(FILTER)] [\"FORMAT\"[, ARG...]]: the format is in double quotes",
            ));
        }
        let convs = format.as_ref().map_or(0, |f| f.convs().count());
        if convs != args.len() {
            return Err(syntax(text, format!("the format has {convs} conversions and {} arguments", args.len())));
        }
        if args.len() > 16 {
            return Err(syntax(text, "at most 16 arguments"));
        }
        Ok(Self { text: text.to_owned(), spec, ret, params, filter, format, args })
    }
}

/// What argdist makes of a probe's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArgdistMode {
    /// Counts of each distinct value (`-C`).
    Count,
    /// A log2 histogram (`-H`).
    Histogram,
}

/// One argdist specifier as written.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArgdistSpec {
    /// The text as written.
    pub text: String,
    /// `-C` or `-H`.
    pub mode: ArgdistMode,
    /// Where it attaches.
    pub spec: ProbeSpec,
    /// A return probe (`r:`).
    pub ret: bool,
    /// The signature.
    pub params: Vec<Param>,
    /// The values' types, one per expression.
    pub types: Vec<CType>,
    /// The values (none: the calls are counted).
    pub exprs: Vec<Expr>,
    /// The expressions as written (bcc's row labels).
    pub expr_texts: Vec<String>,
    /// Hits counted only when this holds.
    pub filter: Option<Expr>,
    /// The label (`#LABEL`), or the text.
    pub label: String,
}

impl ArgdistSpec {
    /// Parses one specifier of argdist.
    pub fn parse(text: &str, mode: ArgdistMode) -> Result<Self, ExprError> {
        if text.len() > MAX_TEXT || text.contains('\0') {
            return Err(syntax(text, format!("longer than {MAX_TEXT} bytes, or holds a NUL byte")));
        }
        let form = "expected {p,r,t,u}:SPEC(SIGNATURE)[:TYPE:EXPR[:FILTER]][#LABEL], as 'p:/bin/app:f(int a):int:a'";
        let (body, label) = match text.rfind('#') {
            Some(h) if !text[h..].contains('"') => (&text[..h], Some(text[h + 1..].trim().to_owned())),
            _ => (text, None),
        };
        let body = body.trim();
        if !["p:", "r:", "t:", "u:"].iter().any(|p| body.starts_with(p)) {
            return Err(syntax(text, form));
        }
        let open = body.find('(').ok_or_else(|| syntax(text, form))?;
        let close = closing(body, open).ok_or_else(|| syntax(text, "the signature's parenthesis is not closed"))?;
        let (spec, ret) = parse_probe(&body[..open])?;
        let params = parse_signature(&body[open + 1..close])?;
        let rest = &body[close + 1..];
        let (mut types, mut exprs, mut expr_texts, mut filter) = (Vec::new(), Vec::new(), Vec::new(), None);
        if !rest.is_empty() {
            let rest = rest.strip_prefix(':').ok_or_else(|| syntax(text, form))?;
            let parts = split_top(rest, ':');
            if parts.len() < 2 || parts.len() > 3 {
                return Err(syntax(text, form));
            }
            for t in split_top(parts[0], ',') {
                types.push(CType::parse(t).ok_or_else(|| {
                    syntax(t, "unknown type: integers (int, long, u32, size_t...) and char * are taken")
                })?);
            }
            for e in split_top(parts[1], ',') {
                exprs.push(Expr::parse(e.trim())?);
                expr_texts.push(e.trim().to_owned());
            }
            if types.len() != exprs.len() {
                return Err(syntax(text, format!("{} types for {} expressions", types.len(), exprs.len())));
            }
            if let Some(f) = parts.get(2) {
                filter = Some(Expr::parse(f)?);
            }
        }
        if mode == ArgdistMode::Histogram {
            if exprs.len() != 1 {
                return Err(syntax(text, "a histogram (-H) takes one expression"));
            }
            if types[0] == CType::Str {
                return Err(syntax(text, "a histogram (-H) is of a number, not a string: count strings with -C"));
            }
        }
        let label = label.filter(|l| !l.is_empty()).unwrap_or_else(|| body.to_owned());
        Ok(Self { text: text.to_owned(), mode, spec, ret, params, types, exprs, expr_texts, filter, label })
    }
}

/// What a compiled probe reads: the probe's kind and what it can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Site {
    Entry,
    Return,
    Tracepoint,
    Usdt,
}

/// A field of a tracepoint's record, as its format file describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpField {
    /// Byte offset.
    pub offset: u32,
    /// Size in bytes.
    pub size: u32,
    /// Signed.
    pub signed: bool,
    /// A `__data_loc` string.
    pub data_loc: bool,
    /// A pointer to a string (`char *`).
    pub str_ptr: bool,
    /// An array of `char`.
    pub char_array: bool,
}

/// Parses a tracepoint's `format` file, with types.
pub fn parse_tp_format(text: &str) -> HashMap<String, TpField> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let Some(rest) = line.trim().strip_prefix("field:") else { continue };
        let mut parts = rest.split(';').map(str::trim);
        let Some(decl) = parts.next() else { continue };
        let (mut offset, mut size, mut signed) = (None, None, false);
        for p in parts {
            if let Some(v) = p.strip_prefix("offset:") {
                offset = v.parse().ok();
            } else if let Some(v) = p.strip_prefix("size:") {
                size = v.parse().ok();
            } else if let Some(v) = p.strip_prefix("signed:") {
                signed = v == "1";
            }
        }
        let Some(last) = decl.split_whitespace().last() else { continue };
        let name = last.split('[').next().unwrap_or(last).trim_start_matches('*');
        let ty = decl[..decl.len() - last.len()].trim();
        let data_loc = decl.starts_with("__data_loc");
        let str_ptr = !data_loc
            && (ty.ends_with("char *") || ty.ends_with("char*") || last.starts_with("*"))
            && decl.contains("char");
        let char_array = !data_loc && decl.contains("char") && last.contains('[');
        if let (Some(offset), Some(size)) = (offset, size) {
            out.insert(name.to_owned(), TpField { offset, size, signed, data_loc, str_ptr, char_array });
        }
    }
    out
}

/// Where a USDT argument lives: `-4@%edi`, `8@-8(%rbp)`, `4@$5`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UsdtLoc {
    /// A register (a `pt_regs` word).
    Reg(u32),
    /// Memory at a register plus an offset.
    Mem(u32, i64),
    /// A constant.
    Imm(i64),
}

/// One USDT argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UsdtArg {
    /// Its size in bytes.
    pub size: u8,
    /// Signed (`-4@...`).
    pub signed: bool,
    /// Where it lives.
    pub loc: UsdtLoc,
}

/// The `pt_regs` word of an x86-64 register name (any width).
fn x86_reg(name: &str) -> Option<u32> {
    Some(match name {
        "rax" | "eax" | "ax" | "al" => 10,
        "rbx" | "ebx" | "bx" | "bl" => 5,
        "rcx" | "ecx" | "cx" | "cl" => 11,
        "rdx" | "edx" | "dx" | "dl" => 12,
        "rsi" | "esi" | "si" | "sil" => 13,
        "rdi" | "edi" | "di" | "dil" => 14,
        "rbp" | "ebp" | "bp" | "bpl" => 4,
        "rsp" | "esp" | "sp" | "spl" => 19,
        "rip" => 16,
        _ => {
            let n: u32 = name.strip_prefix('r')?.trim_end_matches(['d', 'w', 'b']).parse().ok()?;
            // pt_regs: r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax...
            match n {
                8 => 9,
                9 => 8,
                10 => 7,
                11 => 6,
                12 => 3,
                13 => 2,
                14 => 1,
                15 => 0,
                _ => return None,
            }
        }
    })
}

/// Parses a note's argument specifications (x86-64).
pub fn parse_usdt_args(text: &str) -> Result<Vec<UsdtArg>, String> {
    let mut out = Vec::new();
    for a in text.split_whitespace() {
        let bad = || format!("USDT argument {a:?} is not in a form perfkit reads (N@%reg, N@OFF(%reg), N@$IMM)");
        let (size, loc) = a.split_once('@').ok_or_else(bad)?;
        let size: i32 = size.parse().map_err(|_| bad())?;
        let signed = size < 0;
        let size = size.unsigned_abs();
        if ![1, 2, 4, 8].contains(&size) {
            return Err(bad());
        }
        let loc = if let Some(r) = loc.strip_prefix('%') {
            UsdtLoc::Reg(x86_reg(r).ok_or_else(bad)?)
        } else if let Some(v) = loc.strip_prefix('$') {
            UsdtLoc::Imm(v.parse().map_err(|_| bad())?)
        } else {
            let open = loc.find('(').ok_or_else(bad)?;
            let reg = loc[open + 1..].strip_suffix(')').and_then(|r| r.strip_prefix('%')).ok_or_else(bad)?;
            let off = &loc[..open];
            let off: i64 = if off.is_empty() { 0 } else { off.parse().map_err(|_| bad())? };
            UsdtLoc::Mem(x86_reg(reg).ok_or_else(bad)?, off)
        };
        out.push(UsdtArg { size: size as u8, signed, loc });
    }
    Ok(out)
}

/// A value as computed from a hit.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Value {
    /// A number.
    Int(i128),
    /// A string (escaped for printing).
    Str(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Int(v) => write!(f, "{v}"),
            Self::Str(s) => write!(f, "{s}"),
        }
    }
}

/// A compiled expression.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    Int(i128),
    Str(String),
    /// A register, cast.
    Reg(u32, CType),
    /// A record field.
    Record {
        offset: u32,
        ty: CType,
    },
    /// A char array of the record.
    RecordChars {
        offset: u32,
        len: u32,
    },
    /// A memory operand, cast.
    Deref(usize, CType),
    /// A string slot.
    Slot(usize),
    Latency,
    Pid,
    Tid,
    Neg(Box<Node>),
    Not(Box<Node>),
    Binary(BinOp, Box<Node>, Box<Node>),
}

/// What one hit carries, as user space reads it.
pub(crate) struct Hit<'a> {
    pub regs: &'a [u64],
    pub derefs: &'a [u64],
    pub record: &'a [u8],
    /// Strings, escaped, with whether each was cut or unreadable.
    pub strings: &'a [(String, bool, bool)],
    pub latency: Option<u64>,
    pub pid: u32,
    pub tid: u32,
}

impl Node {
    pub(crate) fn eval(&self, h: &Hit<'_>) -> Value {
        let int = |n: &Node| match n.eval(h) {
            Value::Int(v) => v,
            Value::Str(s) => i128::from(!s.is_empty()),
        };
        match self {
            Self::Int(v) => Value::Int(*v),
            Self::Str(s) => Value::Str(s.clone()),
            Self::Reg(r, ty) => Value::Int(ty.cast(h.regs.get(*r as usize).copied().unwrap_or(0))),
            Self::Record { offset, ty } => {
                let size = match ty {
                    CType::Signed(s) | CType::Unsigned(s) => *s as usize,
                    CType::Str => 8,
                };
                let at = *offset as usize;
                let mut raw = [0u8; 8];
                if let Some(b) = h.record.get(at..at + size) {
                    raw[..size].copy_from_slice(b);
                }
                Value::Int(ty.cast(u64::from_le_bytes(raw)))
            }
            Self::RecordChars { offset, len } => {
                let at = *offset as usize;
                let b = h.record.get(at..at + *len as usize).unwrap_or(&[]);
                let n = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                Value::Str(perfkit_model::escape_bytes(&b[..n]))
            }
            Self::Deref(i, ty) => Value::Int(ty.cast(h.derefs.get(*i).copied().unwrap_or(0))),
            Self::Slot(i) => Value::Str(h.strings.get(*i).map(|s| s.0.clone()).unwrap_or_default()),
            Self::Latency => Value::Int(h.latency.unwrap_or(0) as i128),
            Self::Pid => Value::Int(h.pid as i128),
            Self::Tid => Value::Int(h.tid as i128),
            Self::Neg(a) => Value::Int(int(a).wrapping_neg()),
            Self::Not(a) => Value::Int(i128::from(int(a) == 0)),
            Self::Binary(op, a, b) => {
                if matches!(op, BinOp::Eq | BinOp::Ne)
                    && let (Value::Str(x), Value::Str(y)) = (a.eval(h), b.eval(h))
                {
                    return Value::Int(i128::from((x == y) == (*op == BinOp::Eq)));
                }
                let (x, y) = (int(a), int(b));
                let shift = |y: i128| (y.clamp(0, 127)) as u32;
                Value::Int(match op {
                    BinOp::Add => x.wrapping_add(y),
                    BinOp::Sub => x.wrapping_sub(y),
                    BinOp::Mul => x.wrapping_mul(y),
                    BinOp::Div => x.checked_div(y).unwrap_or(0),
                    BinOp::Rem => x.checked_rem(y).unwrap_or(0),
                    BinOp::And => x & y,
                    BinOp::Or => x | y,
                    BinOp::Xor => x ^ y,
                    BinOp::Shl => x.checked_shl(shift(y)).unwrap_or(0),
                    BinOp::Shr => x >> shift(y),
                    BinOp::Eq => i128::from(x == y),
                    BinOp::Ne => i128::from(x != y),
                    BinOp::Lt => i128::from(x < y),
                    BinOp::Le => i128::from(x <= y),
                    BinOp::Gt => i128::from(x > y),
                    BinOp::Ge => i128::from(x >= y),
                    BinOp::LogAnd => i128::from(x != 0 && y != 0),
                    BinOp::LogOr => i128::from(x != 0 || y != 0),
                })
            }
        }
    }

    pub(crate) fn uses_latency(&self) -> bool {
        match self {
            Self::Latency => true,
            Self::Neg(a) | Self::Not(a) => a.uses_latency(),
            Self::Binary(_, a, b) => a.uses_latency() || b.uses_latency(),
            _ => false,
        }
    }
}

/// Compiles expressions of one resolved probe, allocating the strings and
/// memory operands the kernel reads.
pub(crate) struct Compiler<'a> {
    pub site: Site,
    pub params: &'a [Param],
    pub fields: &'a HashMap<String, TpField>,
    pub usdt: &'a [UsdtArg],
    pub config: TraceProbe,
    strings: usize,
    derefs: usize,
    /// The probe's name, for errors.
    pub name: &'a str,
}

impl<'a> Compiler<'a> {
    pub(crate) fn new(
        site: Site,
        params: &'a [Param],
        fields: &'a HashMap<String, TpField>,
        usdt: &'a [UsdtArg],
        name: &'a str,
    ) -> Self {
        let mut config = TraceProbe::default();
        for d in &mut config.derefs {
            *d = Deref { reg: u32::MAX, size: 0, offset: 0 };
        }
        if site == Site::Tracepoint {
            let end = fields.values().map(|f| f.offset + f.size).max().unwrap_or(0);
            config.record_len = end.min(RECORD_BYTES as u32);
        }
        Self { site, params, fields, usdt, config, strings: 0, derefs: 0, name }
    }

    fn err(&self, why: impl Into<String>) -> ExprError {
        syntax(self.name, why)
    }

    fn slot(&mut self, src: StrSource) -> Result<Node, ExprError> {
        if let Some(i) = self.config.strings[..self.strings].iter().position(|s| *s == src) {
            return Ok(Node::Slot(i));
        }
        if self.strings == STR_SLOTS {
            return Err(self.err(format!("more than {STR_SLOTS} strings in one probe")));
        }
        self.config.strings[self.strings] = src;
        self.strings += 1;
        Ok(Node::Slot(self.strings - 1))
    }

    fn deref(&mut self, reg: u32, offset: i64, size: u8) -> Result<usize, ExprError> {
        let d = Deref { reg, size: size as u32, offset };
        if let Some(i) = self.config.derefs[..self.derefs].iter().position(|x| *x == d) {
            return Ok(i);
        }
        if self.derefs == DEREFS {
            return Err(self.err(format!("more than {DEREFS} memory operands in one probe")));
        }
        self.config.derefs[self.derefs] = d;
        self.derefs += 1;
        Ok(self.derefs - 1)
    }

    /// A register value (an argument or the return value) of type `ty`,
    /// or the string it points at.
    fn reg(&mut self, reg: u32, ty: CType, string: bool) -> Result<Node, ExprError> {
        if string || ty == CType::Str {
            self.slot(StrSource { kind: STR_REG, index: reg })
        } else {
            Ok(Node::Reg(reg, ty))
        }
    }

    fn arg(&mut self, n: usize, ty: Option<CType>, string: bool) -> Result<Node, ExprError> {
        match self.site {
            Site::Entry => {
                let reg = *ARG_REGS.get(n.wrapping_sub(1)).ok_or_else(|| self.err("arguments are arg1 to arg6"))?;
                self.reg(reg, ty.unwrap_or(CType::Signed(8)), string)
            }
            Site::Return => Err(self.err("a return probe sees retval, not the arguments")),
            Site::Tracepoint => Err(self.err("a tracepoint's values are its fields: args->FIELD")),
            Site::Usdt => {
                let a = *self
                    .usdt
                    .get(n.wrapping_sub(1))
                    .ok_or_else(|| self.err(format!("arg{n}: the USDT probe has {} arguments", self.usdt.len())))?;
                let ty = ty.unwrap_or(if a.signed { CType::Signed(a.size) } else { CType::Unsigned(a.size) });
                match a.loc {
                    UsdtLoc::Reg(r) => self.reg(r, ty, string),
                    UsdtLoc::Imm(v) if !string => Ok(Node::Int(ty.cast(v as u64))),
                    UsdtLoc::Imm(_) => Err(self.err(format!("arg{n} is a constant, not a string"))),
                    UsdtLoc::Mem(r, off) => {
                        let i = self.deref(r, off, a.size)?;
                        if string || ty == CType::Str {
                            self.slot(StrSource { kind: STR_DEREF, index: i as u32 })
                        } else {
                            Ok(Node::Deref(i, ty))
                        }
                    }
                }
            }
        }
    }

    /// Compiles `e`; `string`: its value is a string (`%s`, `char *`).
    pub(crate) fn compile(&mut self, e: &Expr, string: bool) -> Result<Node, ExprError> {
        let leaf = |e: &Expr| matches!(e, Expr::Var(_) | Expr::Field(_) | Expr::Str(_));
        if string && !leaf(e) {
            return Err(self.err("a string is an argument, the return value or a field, not an expression"));
        }
        Ok(match e {
            Expr::Int(v) => Node::Int(*v),
            Expr::Str(s) => Node::Str(s.clone()),
            Expr::Var(name) => match name.as_str() {
                "retval" | "$retval" => {
                    if self.site != Site::Return {
                        return Err(self.err("retval is seen by return probes: r:LIB:FUNC"));
                    }
                    self.reg(RET_REG, CType::Signed(8), string)?
                }
                "$latency" => {
                    if self.site != Site::Return {
                        return Err(self.err("$latency is measured by return probes: r:LIB:FUNC"));
                    }
                    Node::Latency
                }
                "$PID" => Node::Pid,
                "$TID" => Node::Tid,
                n if n.starts_with("arg") && n[3..].parse::<usize>().is_ok() => {
                    self.arg(n[3..].parse().unwrap_or(0), None, string)?
                }
                n => {
                    let Some(i) = self.params.iter().position(|p| p.name == n) else {
                        return Err(self.err(format!(
                            "unknown name {n:?}: arg1..arg6, retval, $retval, $latency, $PID, $TID, args->FIELD \
                             or a parameter of the signature"
                        )));
                    };
                    let ty = self.params[i].ty;
                    self.arg(i + 1, Some(ty), string)?
                }
            },
            Expr::Field(f) => {
                if self.site != Site::Tracepoint {
                    return Err(self.err("args->FIELD names a tracepoint's field"));
                }
                let Some(field) = self.fields.get(f).cloned() else {
                    let mut names: Vec<&String> = self.fields.keys().filter(|k| !k.starts_with("common_")).collect();
                    names.sort();
                    return Err(self.err(format!("the tracepoint has no field {f:?}; it has {names:?}")));
                };
                if field.offset + field.size > RECORD_BYTES as u32 {
                    return Err(self.err(format!("args->{f} lies past the {RECORD_BYTES} bytes of the record read")));
                }
                if field.data_loc {
                    self.slot(StrSource { kind: STR_DATA_LOC, index: field.offset })?
                } else if field.char_array {
                    Node::RecordChars { offset: field.offset, len: field.size.min(STR_LEN as u32) }
                } else if string || field.str_ptr {
                    if field.size != 8 {
                        return Err(self.err(format!("args->{f} is not a pointer")));
                    }
                    self.slot(StrSource { kind: STR_FIELD, index: field.offset })?
                } else {
                    let ty = match (field.size, field.signed) {
                        (s @ (1 | 2 | 4 | 8), true) => CType::Signed(s as u8),
                        (s @ (1 | 2 | 4 | 8), false) => CType::Unsigned(s as u8),
                        _ => return Err(self.err(format!("args->{f} is {} bytes, not a number", field.size))),
                    };
                    Node::Record { offset: field.offset, ty }
                }
            }
            Expr::Neg(a) => Node::Neg(Box::new(self.compile(a, false)?)),
            Expr::Not(a) => Node::Not(Box::new(self.compile(a, false)?)),
            Expr::Binary(op, a, b) => {
                // A string literal compared makes the other side a string.
                let sa = matches!(**b, Expr::Str(_)) && leaf(a);
                let sb = matches!(**a, Expr::Str(_)) && leaf(b);
                Node::Binary(*op, Box::new(self.compile(a, sa)?), Box::new(self.compile(b, sb)?))
            }
        })
    }
}

/// Formats `values` by `format`, as C's printf would with the arguments
/// cast to the conversions' types.
pub(crate) fn render(format: &Format, values: &[Value]) -> String {
    let mut out = String::new();
    let mut vals = values.iter();
    for p in &format.pieces {
        match p {
            Piece::Lit(s) => out.push_str(s),
            Piece::Conv(c) => {
                let v = vals.next();
                let int = match v {
                    Some(Value::Int(i)) => *i,
                    _ => 0,
                };
                let text = match c.kind {
                    's' => match v {
                        Some(Value::Str(s)) => s.clone(),
                        Some(Value::Int(i)) => i.to_string(),
                        None => String::new(),
                    },
                    'd' | 'i' if c.long => (int as i64).to_string(),
                    'd' | 'i' => (int as i32).to_string(),
                    'u' if c.long => (int as u64).to_string(),
                    'u' => (int as u32).to_string(),
                    'x' if c.long => format!("{:x}", int as u64),
                    'x' => format!("{:x}", int as u32),
                    'X' if c.long => format!("{:X}", int as u64),
                    'X' => format!("{:X}", int as u32),
                    'c' => perfkit_model::escape_bytes(&[int as u8]),
                    'p' => format!("0x{:x}", int as u64),
                    _ => String::new(),
                };
                let len = text.chars().count();
                if len >= c.width {
                    out.push_str(&text);
                } else if c.left {
                    out.push_str(&text);
                    out.extend(std::iter::repeat_n(' ', c.width - len));
                } else if c.zero && c.kind != 's' {
                    let (sign, digits) = text.strip_prefix('-').map_or(("", text.as_str()), |d| ("-", d));
                    out.push_str(sign);
                    out.extend(std::iter::repeat_n('0', c.width - len));
                    out.push_str(digits);
                } else {
                    out.extend(std::iter::repeat_n(' ', c.width - len));
                    out.push_str(&text);
                }
            }
        }
    }
    out
}

/// Whether conversion `i` of `format` is `%s`.
pub(crate) fn conv_is_string(format: &Format, i: usize) -> bool {
    format.convs().nth(i).is_some_and(|c| c.kind == 's')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_trace_probes_in_bccs_forms() {
        let p = TraceProbeSpec::parse(r#"/tmp/app:f (arg1 > 5 && arg1 != 9) "a=%d s=%s", arg1, arg2"#).unwrap();
        assert_eq!(p.spec, ProbeSpec::Uprobe { file: "/tmp/app".into(), function: "f".into() });
        assert!(!p.ret);
        assert_eq!(p.args.len(), 2);
        assert!(p.filter.is_some());
        let r = TraceProbeSpec::parse(r#"r:c:getpid "%d", retval"#).unwrap();
        assert!(r.ret);
        let t = TraceProbeSpec::parse(r#"t:syscalls:sys_enter_openat "%s", args->filename"#).unwrap();
        assert!(matches!(t.spec, ProbeSpec::Tracepoint { .. }));
        let u = TraceProbeSpec::parse(r#"u:/tmp/app:prov:tick "%d", arg1"#).unwrap();
        assert!(matches!(u.spec, ProbeSpec::Usdt { .. }));
        let s = TraceProbeSpec::parse(r#"p:/tmp/app:f(int a, char *s) "%d %s", a, s"#).unwrap();
        assert_eq!(
            s.params,
            vec![Param { ty: CType::Signed(4), name: "a".into() }, Param { ty: CType::Str, name: "s".into() }]
        );
        assert!(TraceProbeSpec::parse("/tmp/app:f").unwrap().format.is_none());
    }

    #[test]
    fn refuses_bad_trace_probes_with_reasons() {
        for (text, why) in [
            (r#"/tmp/app:f "%d %d", arg1"#, "2 conversions and 1 arguments"),
            (r#"/tmp/app:f "%q", arg1"#, "%q is not taken"),
            (r#"/tmp/app:f (arg1 > "#, "not closed"),
            (r#"/tmp/app:f "unterminated"#, "not closed"),
            (r#"/tmp/app:f arg1"#, "double quotes"),
            (r#"/tmp/app:f (arg1 >) "x""#, "ends too early"),
            (r#"/tmp/app:f (arg1 @ 2) "x""#, "unexpected '@'"),
            (r#"/tmp/app:f "%d", 99999999999999999999999"#, "not an integer"),
            ("t:sched", "t:CATEGORY:NAME"),
        ] {
            let err = TraceProbeSpec::parse(text).expect_err(text).to_string();
            assert!(err.contains(why), "{text}: {err}");
        }
        let deep = format!("/tmp/app:f ({}1{}) \"x\"", "(".repeat(500), ")".repeat(500));
        assert!(TraceProbeSpec::parse(&deep).unwrap_err().to_string().contains("nested too deeply"));
        let long = format!("/tmp/app:f \"{}\"", "x".repeat(5000));
        assert!(TraceProbeSpec::parse(&long).is_err());
    }

    #[test]
    fn parses_argdist_specifiers() {
        let c = ArgdistSpec::parse("p:/tmp/app:f(int a, char *s):int:a", ArgdistMode::Count).unwrap();
        assert_eq!(c.types, vec![CType::Signed(4)]);
        assert_eq!(c.expr_texts, vec!["a"]);
        assert_eq!(c.label, "p:/tmp/app:f(int a, char *s):int:a");
        let f = ArgdistSpec::parse("p:/tmp/app:f(int a):int,int:a,a*2:a>3#big", ArgdistMode::Count).unwrap();
        assert_eq!(f.exprs.len(), 2);
        assert!(f.filter.is_some());
        assert_eq!(f.label, "big");
        let r = ArgdistSpec::parse("r:/tmp/app:g():u64:$retval", ArgdistMode::Histogram).unwrap();
        assert!(r.ret);
        let calls = ArgdistSpec::parse("p:c:fork()", ArgdistMode::Count).unwrap();
        assert!(calls.exprs.is_empty());
        for (text, why) in [
            ("/tmp/app:f(int a):int:a", "expected {p,r,t,u}"),
            ("p:/tmp/app:f(int a):int", "expected"),
            ("p:/tmp/app:f(int a):int,int:a", "2 types for 1 expressions"),
            ("p:/tmp/app:f(float a):int:a", "unknown type"),
            ("p:/tmp/app:f(int a", "not closed"),
        ] {
            let err = ArgdistSpec::parse(text, ArgdistMode::Count).expect_err(text).to_string();
            assert!(err.contains(why), "{text}: {err}");
        }
        let err = ArgdistSpec::parse("p:/tmp/app:f(char *s):char*:s", ArgdistMode::Histogram).unwrap_err();
        assert!(err.to_string().contains("count strings with -C"), "{err}");
    }

    #[test]
    fn formats_as_printf_does() {
        let f = Format::parse("%d|%u|%x|%s|%c|%p|%llu|%5d|%-3d|%03d|%%").unwrap();
        let v = [
            Value::Int(-1),
            Value::Int(-1),
            Value::Int(255),
            Value::Str("hi".into()),
            Value::Int(65),
            Value::Int(0x1000),
            Value::Int(u64::MAX as i128),
            Value::Int(42),
            Value::Int(7),
            Value::Int(-5),
        ];
        assert_eq!(render(&f, &v), "-1|4294967295|ff|hi|A|0x1000|18446744073709551615|   42|7  |-05|%");
        // %d of a full register takes its low 32 bits, as C's int does.
        let d = Format::parse("%d %ld").unwrap();
        assert_eq!(render(&d, &[Value::Int(0x1_0000_0005), Value::Int(0x1_0000_0005)]), "5 4294967301");
    }

    #[test]
    fn evaluates_filters_on_registers_records_and_strings() {
        let fields = parse_tp_format(
            "\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;\n\tfield:char comm[16];\toffset:32;\tsize:16;\tsigned:0;\n\tfield:__data_loc char[] name;\toffset:48;\tsize:4;\tsigned:0;",
        );
        assert!(fields["filename"].str_ptr && !fields["__syscall_nr"].str_ptr);
        assert!(fields["comm"].char_array && fields["name"].data_loc);
        let mut c = Compiler::new(Site::Tracepoint, &[], &fields, &[], "t:x:y");
        let nr = c.compile(&Expr::parse("args->__syscall_nr == -2").unwrap(), false).unwrap();
        let file = c.compile(&Expr::parse("args->filename").unwrap(), true).unwrap();
        let comm = c.compile(&Expr::parse("args->comm == \"app\"").unwrap(), false).unwrap();
        assert_eq!(c.config.strings[0], StrSource { kind: STR_FIELD, index: 24 });
        assert_eq!(c.config.record_len, 52);
        let mut record = vec![0u8; 64];
        record[8..12].copy_from_slice(&(-2i32).to_le_bytes());
        record[32..35].copy_from_slice(b"app");
        let strings = vec![("/etc/passwd".to_owned(), false, false)];
        let h =
            Hit { regs: &[0; 21], derefs: &[0; 6], record: &record, strings: &strings, latency: None, pid: 1, tid: 1 };
        assert_eq!(nr.eval(&h), Value::Int(1));
        assert_eq!(file.eval(&h), Value::Str("/etc/passwd".into()));
        assert_eq!(comm.eval(&h), Value::Int(1));
        // Errors name what exists.
        let err = c.compile(&Expr::parse("args->nope").unwrap(), false).unwrap_err().to_string();
        assert!(err.contains("no field \"nope\"") && err.contains("filename"), "{err}");
        assert!(c.compile(&Expr::parse("arg1").unwrap(), false).is_err());
        // Entry probes: arguments by register, typed by the signature.
        let params = parse_signature("int a, char *s").unwrap();
        let mut e = Compiler::new(Site::Entry, &params, &fields, &[], "p:x:f");
        let a = e.compile(&Expr::parse("a * 2 + 1").unwrap(), false).unwrap();
        let s = e.compile(&Expr::parse("s").unwrap(), false).unwrap();
        assert_eq!(e.config.strings[0], StrSource { kind: STR_REG, index: 13 });
        let mut regs = [0u64; 21];
        regs[14] = 0xffff_ffff_ffff_fffd; // -3 as int
        let h = Hit { regs: &regs, strings: &strings, ..h };
        assert_eq!(a.eval(&h), Value::Int(-5));
        assert_eq!(s.eval(&h), Value::Str("/etc/passwd".into()));
        assert!(e.compile(&Expr::parse("retval").unwrap(), false).unwrap_err().to_string().contains("r:LIB:FUNC"));
        assert!(e.compile(&Expr::parse("1 / 0").unwrap(), false).is_ok());
        assert_eq!(Node::Binary(BinOp::Div, Box::new(Node::Int(1)), Box::new(Node::Int(0))).eval(&h), Value::Int(0));
    }

    #[test]
    fn bounds_an_expressions_operators_so_its_walks_fit_a_stack() {
        // The most operators taken: compiled and evaluated on a thread with
        // a quarter of the test threads' 2 MiB, in a debug build.
        let most = vec!["-1"; MAX_OPERATORS / 2].join("+") + "+1";
        assert_eq!(most.matches(['+', '-']).count(), MAX_OPERATORS);
        let worker = std::thread::Builder::new().stack_size(512 << 10);
        let v = worker
            .spawn(move || {
                let e = Expr::parse(&most).unwrap();
                let fields = HashMap::new();
                let mut c = Compiler::new(Site::Entry, &[], &fields, &[], "p:x:f");
                let n = c.compile(&e, false).unwrap();
                let h =
                    Hit { regs: &[0; 21], derefs: &[0; 6], record: &[], strings: &[], latency: None, pid: 1, tid: 1 };
                n.eval(&h)
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(v, Value::Int(1 - (MAX_OPERATORS / 2) as i128));
        // One more, and a chain as long as the text allows (it overflowed
        // the main thread's stack when compiled), are refused.
        for text in [vec!["1"; MAX_OPERATORS + 2].join("+"), vec!["1"; 2000].join("+")] {
            let err = Expr::parse(&text).map(|_| ()).unwrap_err().to_string();
            assert!(err.contains("more than 128 operators"), "{err}");
        }
        assert!(Expr::parse(&("-".repeat(MAX_OPERATORS) + "1")).is_err());
    }

    #[test]
    fn reads_usdt_argument_specifications() {
        let args = parse_usdt_args("-4@%edi 8@%rsi -4@-20(%rbp) 8@$42 2@(%r12) 4@%r9d").unwrap();
        assert_eq!(args[0], UsdtArg { size: 4, signed: true, loc: UsdtLoc::Reg(14) });
        assert_eq!(args[1].loc, UsdtLoc::Reg(13));
        assert_eq!(args[2].loc, UsdtLoc::Mem(4, -20));
        assert_eq!(args[3].loc, UsdtLoc::Imm(42));
        assert_eq!(args[4].loc, UsdtLoc::Mem(3, 0));
        assert_eq!(args[5].loc, UsdtLoc::Reg(8));
        assert!(parse_usdt_args("4@%xmm0").is_err());
        assert!(parse_usdt_args("3@%eax").is_err());
        assert!(parse_usdt_args("8@8(%rax,%rbx,4)").is_err());
        let none = HashMap::new();
        let mut c = Compiler::new(Site::Usdt, &[], &none, &args, "u:x:p");
        let n = c.compile(&Expr::parse("arg3").unwrap(), false).unwrap();
        assert_eq!(c.config.derefs[0], Deref { reg: 4, size: 4, offset: -20 });
        assert!(matches!(n, Node::Deref(0, CType::Signed(4))));
        assert!(matches!(c.compile(&Expr::parse("arg4").unwrap(), false).unwrap(), Node::Int(42)));
        assert!(c.compile(&Expr::parse("arg7").unwrap(), false).is_err());
    }
}
