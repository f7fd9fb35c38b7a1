//! Byte-level BPE tokenizer built from the GGUF metadata (`tokenizer.ggml.model = "gpt2"`):
//! `tokenizer.ggml.tokens`, `tokenizer.ggml.merges`, `tokenizer.ggml.token_type`.
//!
//! Encoding, in order:
//! 1. special tokens (token type 3 "control" and 4 "user defined", e.g. `<|im_start|>`) are
//!    matched literally in the text (longest match first) and emitted as their ids — the chat
//!    template renders them as text, so the prompt needs them parsed (as llama.cpp's
//!    `parse_special = true`);
//! 2. the remaining text is pre-tokenized like the GPT-2 regex
//!    `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`, preceded
//!    for `tokenizer.ggml.pre = "smollm"` by splitting every digit into its own piece (the
//!    `Digits(individual_digits)` step of SmolLM2's tokenizer.json; llama.cpp does the same).
//!    The scanner is hand-written; `\p{L}` is approximated by `char::is_alphabetic`, `\p{N}` by
//!    `char::is_numeric`, `\s` by `char::is_whitespace` (identical for ASCII);
//! 3. each piece's UTF-8 bytes are mapped to GPT-2's printable byte alphabet and merged by
//!    the ranked merges (lowest rank first, leftmost on ties).
//!
//! Decoding maps the byte alphabet back to bytes; control tokens decode to nothing.
//! Other GGUF tokenizer models (SentencePiece `llama`) and pre-tokenizers (`llama-bpe`, ...)
//! are rejected at load with [`LlmError::BadModel`]; they are not implemented yet.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;

use crate::LlmError;

const TYPE_CONTROL: i32 = 3;
const TYPE_USER_DEFINED: i32 = 4;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Pre {
    Gpt2,
    /// GPT-2 regex after splitting digits individually.
    SmolLm,
}

pub(crate) struct Tokenizer {
    /// Byte-level strings (GPT-2 alphabet) as in the vocabulary.
    vocab: Vec<String>,
    ids: HashMap<String, u32>,
    /// (left id, right id) -> (rank, merged id)
    merges: HashMap<(u32, u32), (u32, u32)>,
    /// id of the single-character token for each byte (in the GPT-2 alphabet)
    byte_ids: [u32; 256],
    /// special tokens, longest first
    specials: Vec<(String, u32)>,
    /// decoded bytes of every token (empty for control tokens)
    bytes: Vec<Vec<u8>>,
    pre: Pre,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub add_bos: bool,
    /// Tokens that end a generation: the EOS id and the usual end-of-turn control tokens.
    pub end_ids: Vec<u32>,
}

/// GPT-2's byte <-> printable unicode table.
fn byte_to_char() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut n = 0u32;
    for b in 0..256u32 {
        let printable =
            (33..=126).contains(&b) || (161..=172).contains(&b) || (174..=255).contains(&b);
        table[b as usize] = if printable {
            char::from_u32(b).unwrap()
        } else {
            let c = char::from_u32(256 + n).unwrap();
            n += 1;
            c
        };
    }
    table
}

fn md_str_array(md: &HashMap<String, Value>, key: &str) -> Result<Vec<String>, LlmError> {
    let v = md
        .get(key)
        .ok_or_else(|| LlmError::BadModel(format!("missing {key}")))?;
    let arr = v
        .to_vec()
        .map_err(|_| LlmError::BadModel(format!("{key} is not an array")))?;
    arr.iter()
        .map(|x| {
            x.to_string()
                .cloned()
                .map_err(|_| LlmError::BadModel(format!("{key}: non-string entry")))
        })
        .collect()
}

fn md_opt_u32(md: &HashMap<String, Value>, key: &str) -> Option<u32> {
    md.get(key).and_then(|v| {
        v.to_u32()
            .ok()
            .or_else(|| v.to_i32().ok().map(|x| x as u32))
    })
}

impl Tokenizer {
    pub fn from_gguf(md: &HashMap<String, Value>) -> Result<Self, LlmError> {
        let model = md
            .get("tokenizer.ggml.model")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_default();
        if model != "gpt2" {
            return Err(LlmError::BadModel(format!(
                "tokenizer model {model:?} is not supported (only byte-level BPE, \"gpt2\")"
            )));
        }
        let pre_name = md
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.to_string().ok())
            .cloned()
            .unwrap_or_else(|| "default".into());
        let pre = match pre_name.as_str() {
            "smollm" => Pre::SmolLm,
            "gpt2" | "default" => Pre::Gpt2,
            other => {
                return Err(LlmError::BadModel(format!(
                    "pre-tokenizer {other:?} is not supported (gpt2, smollm)"
                )))
            }
        };
        let vocab = md_str_array(md, "tokenizer.ggml.tokens")?;
        if vocab.is_empty() || vocab.len() > u32::MAX as usize / 2 {
            return Err(LlmError::BadModel("empty vocabulary".into()));
        }
        let token_type: Vec<i32> = match md.get("tokenizer.ggml.token_type") {
            Some(v) => v
                .to_vec()
                .map_err(|_| LlmError::BadModel("token_type is not an array".into()))?
                .iter()
                .map(|x| x.to_i32().unwrap_or(1))
                .collect(),
            None => vec![1; vocab.len()],
        };
        if token_type.len() != vocab.len() {
            return Err(LlmError::BadModel(
                "token_type length != tokens length".into(),
            ));
        }
        let mut ids = HashMap::with_capacity(vocab.len());
        for (i, t) in vocab.iter().enumerate() {
            ids.entry(t.clone()).or_insert(i as u32);
        }
        let b2c = byte_to_char();
        let mut c2b = HashMap::new();
        for (b, c) in b2c.iter().enumerate() {
            c2b.insert(*c, b as u8);
        }
        let mut byte_ids = [u32::MAX; 256];
        for (b, c) in b2c.iter().enumerate() {
            // Some vocabularies (SmolLM2's) lack a few control-byte tokens: such bytes are
            // dropped when encoding, as the HF tokenizer does for a BPE without an unknown token.
            if let Some(&id) = ids.get(&c.to_string()) {
                byte_ids[b] = id;
            }
        }
        let merge_lines = md_str_array(md, "tokenizer.ggml.merges")?;
        let mut merges = HashMap::with_capacity(merge_lines.len());
        for (rank, line) in merge_lines.iter().enumerate() {
            let Some((a, b)) = line.split_once(' ') else {
                return Err(LlmError::BadModel(format!("bad merge {line:?}")));
            };
            let (Some(&ia), Some(&ib), Some(&im)) =
                (ids.get(a), ids.get(b), ids.get(&format!("{a}{b}")))
            else {
                // A merge whose parts are not in the vocabulary can never apply.
                continue;
            };
            merges.entry((ia, ib)).or_insert((rank as u32, im));
        }
        let mut specials = Vec::new();
        let mut bytes = Vec::with_capacity(vocab.len());
        for (i, t) in vocab.iter().enumerate() {
            let ty = token_type[i];
            if ty == TYPE_CONTROL || ty == TYPE_USER_DEFINED {
                if !t.is_empty() {
                    specials.push((t.clone(), i as u32));
                }
                bytes.push(if ty == TYPE_CONTROL {
                    Vec::new()
                } else {
                    t.as_bytes().to_vec()
                });
            } else {
                // Characters outside the byte alphabet (should not occur) are kept as UTF-8.
                let mut out = Vec::with_capacity(t.len());
                for ch in t.chars() {
                    match c2b.get(&ch) {
                        Some(&b) => out.push(b),
                        None => out.extend_from_slice(ch.to_string().as_bytes()),
                    }
                }
                bytes.push(out);
            }
        }
        specials.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        let bos = md_opt_u32(md, "tokenizer.ggml.bos_token_id");
        let eos = md_opt_u32(md, "tokenizer.ggml.eos_token_id");
        let add_bos = md
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.to_bool().ok())
            .unwrap_or(false);
        let mut end_ids: Vec<u32> = eos.into_iter().collect();
        for name in [
            "<|im_end|>",
            "<|endoftext|>",
            "<|eot_id|>",
            "<|end|>",
            "</s>",
            "<|end_of_text|>",
        ] {
            if let Some(&id) = ids.get(name) {
                if token_type[id as usize] == TYPE_CONTROL && !end_ids.contains(&id) {
                    end_ids.push(id);
                }
            }
        }
        for id in bos.iter().chain(eos.iter()) {
            if *id as usize >= vocab.len() {
                return Err(LlmError::BadModel(format!(
                    "special token id {id} outside vocabulary"
                )));
            }
        }
        Ok(Tokenizer {
            vocab,
            ids,
            merges,
            byte_ids,
            specials,
            bytes,
            pre,
            bos,
            eos,
            add_bos,
            end_ids,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.vocab.get(id as usize).map(|s| s.as_str())
    }

    #[allow(dead_code)]
    pub fn id_of(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }

    /// Encodes text; special tokens written in the text become their ids. No BOS is added.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut out = Vec::new();
        let mut rest = text;
        'outer: while !rest.is_empty() {
            // earliest special token occurrence (longest at that position)
            let mut best: Option<(usize, usize, u32)> = None;
            for (s, id) in &self.specials {
                if let Some(p) = rest.find(s.as_str()) {
                    if best.is_none_or(|(bp, bl, _)| p < bp || (p == bp && s.len() > bl)) {
                        best = Some((p, s.len(), *id));
                    }
                }
            }
            match best {
                Some((p, l, id)) => {
                    self.encode_plain(&rest[..p], &mut out);
                    out.push(id);
                    rest = &rest[p + l..];
                }
                None => {
                    self.encode_plain(rest, &mut out);
                    break 'outer;
                }
            }
        }
        out
    }

    fn encode_plain(&self, text: &str, out: &mut Vec<u32>) {
        if text.is_empty() {
            return;
        }
        let mut pieces = Vec::new();
        match self.pre {
            Pre::Gpt2 => gpt2_split(text, &mut pieces),
            Pre::SmolLm => {
                let mut seg_start = 0;
                for (i, c) in text.char_indices() {
                    if c.is_numeric() {
                        gpt2_split(&text[seg_start..i], &mut pieces);
                        pieces.push(&text[i..i + c.len_utf8()]);
                        seg_start = i + c.len_utf8();
                    }
                }
                gpt2_split(&text[seg_start..], &mut pieces);
            }
        }
        for p in pieces {
            self.bpe(p.as_bytes(), out);
        }
    }

    fn bpe(&self, piece: &[u8], out: &mut Vec<u32>) {
        let mut syms: Vec<u32> = piece.iter().map(|&b| self.byte_ids[b as usize]).collect();
        loop {
            let mut best: Option<(u32, usize, u32)> = None; // (rank, position, merged)
            for i in 0..syms.len().saturating_sub(1) {
                if let Some(&(rank, merged)) = self.merges.get(&(syms[i], syms[i + 1])) {
                    if best.is_none_or(|(r, _, _)| rank < r) {
                        best = Some((rank, i, merged));
                    }
                }
            }
            let Some((rank, _, _)) = best else { break };
            // apply every occurrence of this (leftmost-first, non-overlapping) merge
            let mut next = Vec::with_capacity(syms.len());
            let mut i = 0;
            while i < syms.len() {
                if i + 1 < syms.len() {
                    if let Some(&(r, m)) = self.merges.get(&(syms[i], syms[i + 1])) {
                        if r == rank {
                            next.push(m);
                            i += 2;
                            continue;
                        }
                    }
                }
                next.push(syms[i]);
                i += 1;
            }
            syms = next;
        }
        out.extend(syms.into_iter().filter(|&s| s != u32::MAX));
    }

    /// Raw bytes of a token sequence (control tokens contribute nothing).
    pub fn decode_bytes(&self, tokens: &[u32]) -> Result<Vec<u8>, LlmError> {
        let mut out = Vec::new();
        for &t in tokens {
            let b = self.bytes.get(t as usize).ok_or(LlmError::BadToken {
                token: t,
                vocab: self.vocab.len(),
            })?;
            out.extend_from_slice(b);
        }
        Ok(out)
    }
}

fn is_l(c: char) -> bool {
    c.is_alphabetic()
}
fn is_n(c: char) -> bool {
    c.is_numeric()
}
fn is_other(c: char) -> bool {
    !c.is_whitespace() && !is_l(c) && !is_n(c)
}

/// The GPT-2 pre-tokenizer regex as a scanner (see the module docs).
fn gpt2_split<'a>(s: &'a str, out: &mut Vec<&'a str>) {
    let cs: Vec<(usize, char)> = s.char_indices().collect();
    let n = cs.len();
    let at = |i: usize| if i < n { cs[i].0 } else { s.len() };
    let mut i = 0;
    while i < n {
        let c = cs[i].1;
        // contractions
        if c == '\'' && i + 1 < n {
            let c1 = cs[i + 1].1;
            let c2 = if i + 2 < n { Some(cs[i + 2].1) } else { None };
            let len = match (c1, c2) {
                ('r', Some('e')) | ('v', Some('e')) | ('l', Some('l')) => 3,
                ('s', _) | ('t', _) | ('m', _) | ('d', _) => 2,
                _ => 0,
            };
            if len > 0 {
                out.push(&s[at(i)..at(i + len)]);
                i += len;
                continue;
            }
        }
        let j = if c == ' ' && i + 1 < n { i + 1 } else { i };
        let cj = cs[j].1;
        let class: Option<fn(char) -> bool> = if is_l(cj) {
            Some(is_l)
        } else if is_n(cj) {
            Some(is_n)
        } else if is_other(cj) {
            Some(is_other)
        } else {
            None
        };
        if let Some(f) = class {
            let mut e = j + 1;
            while e < n && f(cs[e].1) {
                e += 1;
            }
            out.push(&s[at(i)..at(e)]);
            i = e;
            continue;
        }
        // whitespace run
        let mut e = i;
        while e < n && cs[e].1.is_whitespace() {
            e += 1;
        }
        if e < n && e - i > 1 {
            // \s+(?!\S): leave the last whitespace char to prefix the next piece
            e -= 1;
        }
        out.push(&s[at(i)..at(e)]);
        i = e;
    }
}

#[cfg(test)]
mod tests {
    use super::gpt2_split;

    fn split(s: &str) -> Vec<&str> {
        let mut v = Vec::new();
        gpt2_split(s, &mut v);
        v
    }

    #[test]
    fn gpt2_pretokenizer_matches_the_regex() {
        assert_eq!(split("Hello world"), vec!["Hello", " world"]);
        assert_eq!(
            split("I'm here, aren't you?"),
            vec!["I", "'m", " here", ",", " aren", "'t", " you", "?"]
        );
        assert_eq!(split("a   b"), vec!["a", "  ", " b"]);
        assert_eq!(split("a\n\nb "), vec!["a", "\n", "\n", "b", " "]);
        assert_eq!(split("x \n y"), vec!["x", " \n", " y"]);
        assert_eq!(split("1234 abc!!"), vec!["1234", " abc", "!!"]);
        assert_eq!(split("  "), vec!["  "]);
        assert_eq!(split("héllo wörld"), vec!["héllo", " wörld"]);
    }
}
