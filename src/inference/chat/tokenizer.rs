//! The chat model's tokenizer: built from a GGUF file's `tokenizer.ggml.*` metadata (GPT-2 style
//! byte-level BPE, or Llama-style SentencePiece with scores), or read from a `tokenizer.json` beside the model file when there is one.
//!
//! Encoding goes through the `tokenizers` crate (special tokens written as text in a rendered chat
//! template are matched first and map to their special ids). Decoding goes through a per-token byte
//! table instead, so generated text can be streamed byte-exactly: a token may carry only part of a
//! multibyte character, and the caller buffers bytes until they form valid UTF-8.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

use crate::inference::InferenceError;

/// GGUF token types (`tokenizer.ggml.token_type`), as llama.cpp defines them.
const TOKEN_TYPE_UNKNOWN: i64 = 2;
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;
const TOKEN_TYPE_BYTE: i64 = 6;

/// Token names that end an assistant turn in the common chat formats (ChatML, Llama 3, Gemma, Phi).
const END_OF_TURN_NAMES: &[&str] = &[
    "<|im_end|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|end_of_text|>",
    "<end_of_turn>",
    "<|end|>",
    "<|endoftext|>",
];

/// Llama 3's split regex (`tokenizer.ggml.pre` = `llama-bpe`).
const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen 2's split regex (`tokenizer.ggml.pre` = `qwen2`).
const QWEN2_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How token strings map back to bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vocabulary {
    /// GPT-2 byte-level BPE: every byte is written as one printable character (`Ġ` for a space).
    ByteLevel,
    /// SentencePiece: `▁` stands for a space, `<0xAB>` tokens for raw bytes.
    SentencePiece,
}

/// Encoder, byte table and the special ids of one chat model.
pub(crate) struct ChatTokenizer {
    inner: Tokenizer,
    /// The bytes each token stands for; empty for control tokens (never shown).
    token_bytes: Vec<Vec<u8>>,
    /// The text form of every token (for templates and tests).
    tokens: Vec<String>,
    bos: Option<u32>,
    eos: Option<u32>,
    add_bos: bool,
    /// Tokens that end the answer: EOS and the chat format's end-of-turn token(s).
    end_of_turn: Vec<u32>,
}

impl ChatTokenizer {
    /// The tokenizer for the model at `path` with the GGUF metadata `content`: `tokenizer.json` beside
    /// the file when present, the GGUF metadata otherwise.
    pub(crate) fn load(path: &Path, content: &Content) -> Result<Self, InferenceError> {
        let md = &content.metadata;
        let beside = path.with_file_name("tokenizer.json");
        let (inner, tokens, types, vocabulary) = if beside.is_file() {
            let inner = Tokenizer::from_file(&beside).map_err(|e| {
                InferenceError::Load(format!("cannot read {}: {e}", beside.display()))
            })?;
            let (tokens, types, vocabulary) = table_from_tokenizer_json(&inner)?;
            (inner, tokens, types, vocabulary)
        } else {
            from_gguf(md)?
        };
        let token_bytes = tokens
            .iter()
            .zip(&types)
            .map(|(t, &ty)| token_to_bytes(t, ty, vocabulary))
            .collect();
        let id = |key: &str| -> Option<u32> {
            md.get(key)
                .and_then(|v| v.to_u32().ok())
                .filter(|&i| (i as usize) < tokens.len())
        };
        let bos = id("tokenizer.ggml.bos_token_id");
        let eos = id("tokenizer.ggml.eos_token_id");
        let add_bos = md
            .get("tokenizer.ggml.add_bos_token")
            .and_then(|v| v.to_bool().ok())
            .unwrap_or(false);
        let mut end_of_turn: Vec<u32> = [
            eos,
            id("tokenizer.ggml.eot_token_id"),
            id("tokenizer.ggml.eom_token_id"),
        ]
        .into_iter()
        .flatten()
        .collect();
        for (i, (token, &ty)) in tokens.iter().zip(&types).enumerate() {
            if ty == TOKEN_TYPE_CONTROL && END_OF_TURN_NAMES.contains(&token.as_str()) {
                end_of_turn.push(i as u32);
            }
        }
        end_of_turn.sort_unstable();
        end_of_turn.dedup();
        if end_of_turn.is_empty() {
            return Err(InferenceError::Load(
                "the tokenizer has no end-of-sequence token (tokenizer.ggml.eos_token_id)".into(),
            ));
        }
        Ok(ChatTokenizer {
            inner,
            token_bytes,
            tokens,
            bos,
            eos,
            add_bos,
            end_of_turn,
        })
    }

    /// Token ids of `text`. Special tokens written in the text (`<|im_start|>`) become their ids; BOS
    /// is put in front when the model asks for it (`tokenizer.ggml.add_bos_token`) and the text does
    /// not start with it already.
    pub(crate) fn encode(&self, text: &str) -> Result<Vec<u32>, InferenceError> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| InferenceError::Runtime(format!("tokenization failed: {e}")))?;
        let mut ids = encoding.get_ids().to_vec();
        if let (true, Some(bos)) = (self.add_bos, self.bos) {
            if ids.first() != Some(&bos) {
                ids.insert(0, bos);
            }
        }
        Ok(ids)
    }

    /// The bytes token `id` stands for (nothing for control tokens and unknown ids).
    pub(crate) fn token_bytes(&self, id: u32) -> &[u8] {
        self.token_bytes
            .get(id as usize)
            .map(Vec::as_slice)
            .unwrap_or_default()
    }

    /// The text of `ids`, control tokens left out, invalid UTF-8 replaced.
    pub(crate) fn decode(&self, ids: &[u32]) -> String {
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|&id| self.token_bytes(id).iter().copied())
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The text form of token `id` (`<|im_end|>` for a special token).
    pub(crate) fn token_text(&self, id: u32) -> Option<&str> {
        self.tokens.get(id as usize).map(String::as_str)
    }

    pub(crate) fn bos_token(&self) -> Option<u32> {
        self.bos
    }

    pub(crate) fn eos_token(&self) -> Option<u32> {
        self.eos
    }

    pub(crate) fn is_end_of_turn(&self, id: u32) -> bool {
        self.end_of_turn.contains(&id)
    }

    pub(crate) fn end_of_turn_tokens(&self) -> &[u32] {
        &self.end_of_turn
    }

    pub(crate) fn vocab_size(&self) -> usize {
        self.tokens.len()
    }
}

fn load_err(what: impl std::fmt::Display) -> InferenceError {
    InferenceError::Load(what.to_string())
}

/// A string array from the metadata.
fn strings<'a>(md: &'a HashMap<String, Value>, key: &str) -> Result<Vec<&'a str>, InferenceError> {
    let values = md
        .get(key)
        .ok_or_else(|| load_err(format!("the GGUF metadata has no {key}")))?
        .to_vec()
        .map_err(|_| load_err(format!("{key} is not an array")))?;
    values
        .iter()
        .map(|v| {
            v.to_string()
                .map(String::as_str)
                .map_err(|_| load_err(format!("{key} holds a value that is not a string")))
        })
        .collect()
}

/// Integer value of any integer GGUF type.
fn as_i64(v: &Value) -> Option<i64> {
    Some(match v {
        Value::U8(x) => i64::from(*x),
        Value::I8(x) => i64::from(*x),
        Value::U16(x) => i64::from(*x),
        Value::I16(x) => i64::from(*x),
        Value::U32(x) => i64::from(*x),
        Value::I32(x) => i64::from(*x),
        Value::U64(x) => i64::try_from(*x).ok()?,
        Value::I64(x) => *x,
        _ => return None,
    })
}

type Table = (Tokenizer, Vec<String>, Vec<i64>, Vocabulary);

/// A byte-level BPE tokenizer from `tokenizer.ggml.{tokens,token_type,merges,pre}`.
fn from_gguf(md: &HashMap<String, Value>) -> Result<Table, InferenceError> {
    let model = md
        .get("tokenizer.ggml.model")
        .and_then(|v| v.to_string().ok())
        .ok_or_else(|| load_err("the GGUF metadata has no tokenizer (tokenizer.ggml.model) and there is no tokenizer.json beside the file"))?;
    if model != "gpt2" && model != "llama" {
        return Err(load_err(format!(
            "tokenizer.ggml.model = {model:?} is not supported from GGUF metadata (\"gpt2\" byte-level BPE and \"llama\" SentencePiece are); put the model's tokenizer.json beside the file"
        )));
    }
    let tokens: Vec<String> = strings(md, "tokenizer.ggml.tokens")?
        .into_iter()
        .map(str::to_string)
        .collect();
    let types = token_types(md, tokens.len())?;
    if model == "llama" {
        return sentencepiece_from_gguf(md, tokens, types);
    }
    let merges: Vec<(String, String)> = strings(md, "tokenizer.ggml.merges")?
        .into_iter()
        .map(|m| {
            // The first space after the first character separates the pair (a part may be one space).
            let cut = m
                .char_indices()
                .skip(1)
                .find(|&(_, c)| c == ' ')
                .map(|(i, _)| i)
                .ok_or_else(|| load_err(format!("malformed merge {m:?}")))?;
            Ok((m[..cut].to_string(), m[cut + 1..].to_string()))
        })
        .collect::<Result<_, InferenceError>>()?;
    let pre = md
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok())
        .map(String::as_str)
        .unwrap_or("default");
    let pre_tokenizer = pre_tokenizer(pre)?;

    let vocab: tokenizers::models::bpe::Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    if vocab.len() != tokens.len() {
        tracing::debug!(
            tokens = tokens.len(),
            distinct = vocab.len(),
            "the GGUF vocabulary repeats token strings"
        );
    }
    let mut builder = BPE::builder().vocab_and_merges(vocab, merges);
    if pre.starts_with("llama") {
        builder = builder.ignore_merges(true);
    }
    if let Some(&unk) = md
        .get("tokenizer.ggml.unknown_token_id")
        .and_then(|v| v.to_u32().ok())
        .as_ref()
    {
        if let Some(t) = tokens.get(unk as usize) {
            builder = builder.unk_token(t.clone());
        }
    }
    let bpe = builder
        .build()
        .map_err(|e| load_err(format!("cannot build the BPE tokenizer: {e}")))?;
    let mut inner = Tokenizer::new(bpe);
    inner.with_pre_tokenizer(Some(pre_tokenizer));
    add_token_kinds(&mut inner, &tokens, &types)?;
    Ok((inner, tokens, types, Vocabulary::ByteLevel))
}

/// `tokenizer.ggml.token_type`, one per token (all normal when absent).
fn token_types(md: &HashMap<String, Value>, n: usize) -> Result<Vec<i64>, InferenceError> {
    let Some(v) = md.get("tokenizer.ggml.token_type") else {
        return Ok(vec![1; n]);
    };
    let types: Vec<i64> = v
        .to_vec()
        .map_err(|_| load_err("tokenizer.ggml.token_type is not an array"))?
        .iter()
        .map(|t| as_i64(t).unwrap_or(1))
        .collect();
    if types.len() != n {
        return Err(load_err(format!(
            "tokenizer.ggml.token_type has {} entries for {n} tokens",
            types.len()
        )));
    }
    Ok(types)
}

/// Registers the control tokens as special and the user-defined ones as added tokens, so they are
/// matched as a whole in text.
fn add_token_kinds(
    inner: &mut Tokenizer,
    tokens: &[String],
    types: &[i64],
) -> Result<(), InferenceError> {
    let of_type = |wanted: i64, special: bool| -> Vec<AddedToken> {
        tokens
            .iter()
            .zip(types)
            .filter(|&(_, &ty)| ty == wanted)
            .map(|(t, _)| AddedToken::from(t.clone(), special).normalized(false))
            .collect()
    };
    inner
        .add_special_tokens(of_type(TOKEN_TYPE_CONTROL, true))
        .map_err(|e| load_err(format!("cannot register the special tokens: {e}")))?;
    inner
        .add_tokens(of_type(TOKEN_TYPE_USER_DEFINED, false))
        .map_err(|e| load_err(format!("cannot register the added tokens: {e}")))?;
    Ok(())
}

/// A SentencePiece-style vocabulary (`tokenizer.ggml.model` = `llama`: tokens with scores, `▁` for
/// spaces, `<0xAB>` byte tokens). llama.cpp merges the adjacent pair whose union has the highest
/// score; that is BPE with every split of every token as a merge, ranked by the token's score (the
/// conversion Hugging Face uses), plus byte fallback for characters outside the vocabulary.
fn sentencepiece_from_gguf(
    md: &HashMap<String, Value>,
    tokens: Vec<String>,
    types: Vec<i64>,
) -> Result<Table, InferenceError> {
    let scores: Vec<f32> = match md.get("tokenizer.ggml.scores") {
        Some(v) => v
            .to_vec()
            .map_err(|_| load_err("tokenizer.ggml.scores is not an array"))?
            .iter()
            .map(|s| s.to_f32().unwrap_or(0.0))
            .collect(),
        None => {
            return Err(load_err(
                "a \"llama\" tokenizer needs tokenizer.ggml.scores",
            ))
        }
    };
    if scores.len() != tokens.len() {
        return Err(load_err(format!(
            "tokenizer.ggml.scores has {} entries for {} tokens",
            scores.len(),
            tokens.len()
        )));
    }
    let vocab: tokenizers::models::bpe::Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    // (score of the merged token, its id, the pair).
    let mut ranked: Vec<(f32, usize, String, String)> = Vec::new();
    for (id, token) in tokens.iter().enumerate() {
        if types[id] != 1 {
            continue;
        }
        for (cut, _) in token.char_indices().skip(1) {
            let (a, b) = token.split_at(cut);
            if vocab.contains_key(a) && vocab.contains_key(b) {
                ranked.push((scores[id], id, a.to_string(), b.to_string()));
            }
        }
    }
    ranked.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
    let merges = ranked.into_iter().map(|(_, _, a, b)| (a, b)).collect();
    let mut builder = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(true);
    if let Some(t) = md
        .get("tokenizer.ggml.unknown_token_id")
        .and_then(|v| v.to_u32().ok())
        .and_then(|i| tokens.get(i as usize))
    {
        builder = builder.unk_token(t.clone());
    }
    let bpe = builder
        .build()
        .map_err(|e| load_err(format!("cannot build the SentencePiece tokenizer: {e}")))?;
    let add_space_prefix = md
        .get("tokenizer.ggml.add_space_prefix")
        .and_then(|v| v.to_bool().ok())
        .unwrap_or(true);
    let scheme = if add_space_prefix {
        PrependScheme::First
    } else {
        PrependScheme::Never
    };
    let mut inner = Tokenizer::new(bpe);
    inner.with_pre_tokenizer(Some(Metaspace::new('▁', scheme, false)));
    add_token_kinds(&mut inner, &tokens, &types)?;
    Ok((inner, tokens, types, Vocabulary::SentencePiece))
}

/// The pre-tokenizer llama.cpp uses for `tokenizer.ggml.pre`.
fn pre_tokenizer(pre: &str) -> Result<PreTokenizerWrapper, InferenceError> {
    // `ByteLevel` with its regex on splits with GPT-2's pattern, llama.cpp's default.
    let byte_level_with_regex = || ByteLevel::new(false, true, true);
    let split_then_bytes = |pattern: &str| -> Result<PreTokenizerWrapper, InferenceError> {
        let split = Split::new(
            SplitPattern::Regex(pattern.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| load_err(format!("bad split pattern for {pre}: {e}")))?;
        Ok(Sequence::new(vec![
            split.into(),
            ByteLevel::new(false, true, false).into(),
        ])
        .into())
    };
    match pre {
        "default" | "gpt2" | "gpt-2" | "phi-2" | "olmo" | "jais" | "poro-chat" | "viking" => {
            Ok(byte_level_with_regex().into())
        }
        // llama.cpp: digits one by one, then the GPT-2 regex.
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva" => {
            Ok(Sequence::new(vec![Digits::new(true).into(), byte_level_with_regex().into()]).into())
        }
        "llama-bpe" | "llama3" | "falcon3" | "pixtral" | "smaug-bpe" => {
            split_then_bytes(LLAMA3_PATTERN)
        }
        "qwen2" | "deepseek-r1-qwen" | "megrez" => split_then_bytes(QWEN2_PATTERN),
        other => Err(load_err(format!(
            "the pre-tokenizer tokenizer.ggml.pre = {other:?} is not supported; put the model's tokenizer.json beside the file"
        ))),
    }
}

/// Tokens, types and vocabulary kind of a tokenizer read from `tokenizer.json`.
fn table_from_tokenizer_json(
    inner: &Tokenizer,
) -> Result<(Vec<String>, Vec<i64>, Vocabulary), InferenceError> {
    let vocab = inner.get_vocab(true);
    let size = vocab.values().map(|&i| i as usize + 1).max().unwrap_or(0);
    let mut tokens = vec![String::new(); size];
    for (t, &i) in &vocab {
        tokens[i as usize] = t.clone();
    }
    let added = inner.get_added_tokens_decoder();
    let byte_level = tokens.iter().filter(|t| t.starts_with('Ġ')).count();
    let sentencepiece = tokens.iter().filter(|t| t.starts_with('▁')).count();
    let vocabulary = if byte_level >= sentencepiece {
        Vocabulary::ByteLevel
    } else {
        Vocabulary::SentencePiece
    };
    let types = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| match added.get(&(i as u32)) {
            Some(a) if a.special => TOKEN_TYPE_CONTROL,
            Some(_) => TOKEN_TYPE_USER_DEFINED,
            None if vocabulary == Vocabulary::SentencePiece && byte_token(t).is_some() => {
                TOKEN_TYPE_BYTE
            }
            None => 1,
        })
        .collect();
    Ok((tokens, types, vocabulary))
}

/// `<0xAB>` → 0xAB.
fn byte_token(t: &str) -> Option<u8> {
    let hex = t.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

/// The bytes a token stands for.
fn token_to_bytes(token: &str, ty: i64, vocabulary: Vocabulary) -> Vec<u8> {
    match ty {
        TOKEN_TYPE_CONTROL | TOKEN_TYPE_UNKNOWN => Vec::new(),
        TOKEN_TYPE_USER_DEFINED => token.as_bytes().to_vec(),
        _ => match vocabulary {
            Vocabulary::ByteLevel => {
                let table = unicode_to_byte();
                let mut out = Vec::with_capacity(token.len());
                for c in token.chars() {
                    match table.get(&c) {
                        Some(&b) => out.push(b),
                        None => {
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                    }
                }
                out
            }
            Vocabulary::SentencePiece => match byte_token(token) {
                Some(b) if ty == TOKEN_TYPE_BYTE => vec![b],
                _ => token.replace('▁', " ").into_bytes(),
            },
        },
    }
}

/// GPT-2's reversible byte ↔ printable character mapping, inverted.
fn unicode_to_byte() -> &'static HashMap<char, u8> {
    static TABLE: std::sync::OnceLock<HashMap<char, u8>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        let mut table = HashMap::with_capacity(256);
        let mut next = 256u32;
        for b in 0..=255u8 {
            let c = if printable(b) {
                char::from(b)
            } else {
                let c = char::from_u32(next).unwrap_or('\u{FFFD}');
                next += 1;
                c
            };
            table.insert(c, b);
        }
        table
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::gguf_file::VersionedMagic;

    /// A tiny Llama-style (SentencePiece, scored) vocabulary as GGUF metadata.
    #[test]
    fn sentencepiece_vocabulary_from_gguf_metadata() {
        let vocab: &[(&str, f32, i32)] = &[
            ("<unk>", 0.0, 2),
            ("<s>", 0.0, 3),
            ("</s>", 0.0, 3),
            ("<0x0A>", 0.0, 6),
            ("<0xC3>", 0.0, 6),
            ("<0xA9>", 0.0, 6),
            ("▁", -20.0, 1),
            ("h", -30.0, 1),
            ("e", -30.0, 1),
            ("l", -30.0, 1),
            ("o", -30.0, 1),
            ("w", -30.0, 1),
            ("r", -30.0, 1),
            ("d", -30.0, 1),
            ("he", -6.0, 1),
            ("ll", -7.0, 1),
            ("llo", -3.0, 1),
            ("hello", -2.0, 1),
            ("▁hello", -1.0, 1),
            ("▁w", -5.0, 1),
            ("or", -4.0, 1),
            ("ld", -3.0, 1),
            ("rld", -10.0, 1),
            ("▁wor", -2.0, 1),
            ("▁world", -1.0, 1),
        ];
        let array =
            |f: &dyn Fn(&(&str, f32, i32)) -> Value| Value::Array(vocab.iter().map(f).collect());
        let mut metadata = HashMap::new();
        metadata.insert("tokenizer.ggml.model".into(), Value::String("llama".into()));
        metadata.insert(
            "tokenizer.ggml.tokens".into(),
            array(&|t| Value::String(t.0.into())),
        );
        metadata.insert("tokenizer.ggml.scores".into(), array(&|t| Value::F32(t.1)));
        metadata.insert(
            "tokenizer.ggml.token_type".into(),
            array(&|t| Value::I32(t.2)),
        );
        metadata.insert("tokenizer.ggml.bos_token_id".into(), Value::U32(1));
        metadata.insert("tokenizer.ggml.eos_token_id".into(), Value::U32(2));
        metadata.insert("tokenizer.ggml.unknown_token_id".into(), Value::U32(0));
        metadata.insert("tokenizer.ggml.add_bos_token".into(), Value::Bool(true));
        let content = Content {
            magic: VersionedMagic::GgufV3,
            metadata,
            tensor_infos: HashMap::new(),
            tensor_data_offset: 0,
        };
        let t = ChatTokenizer::load(Path::new("/nonexistent/model.gguf"), &content)
            .expect("sentencepiece tokenizer");
        let id = |s: &str| vocab.iter().position(|v| v.0 == s).expect("token") as u32;
        assert_eq!(
            t.encode("hello world").expect("encode"),
            vec![1, id("▁hello"), id("▁world")]
        );
        // Characters outside the vocabulary fall back to byte tokens.
        assert_eq!(
            t.encode("hello\né").expect("encode"),
            vec![1, id("▁hello"), id("<0x0A>"), id("<0xC3>"), id("<0xA9>")]
        );
        assert_eq!(t.encode("<s>hello").expect("encode"), vec![1, id("hello")]);
        assert_eq!(
            t.decode(&[
                1,
                id("▁hello"),
                id("▁world"),
                id("<0x0A>"),
                id("<0xC3>"),
                id("<0xA9>"),
                2
            ]),
            " hello world\né"
        );
        assert!(t.is_end_of_turn(2));
    }

    #[test]
    fn byte_level_table_inverts_gpt2_mapping() {
        assert_eq!(
            token_to_bytes("Ġthe", 1, Vocabulary::ByteLevel),
            b" the".to_vec()
        );
        assert_eq!(
            token_to_bytes("Ċ", 1, Vocabulary::ByteLevel),
            b"\n".to_vec()
        );
        // "é" is 0xC3 0xA9: written as "Ã©" in byte-level vocabularies.
        assert_eq!(
            token_to_bytes("Ã©", 1, Vocabulary::ByteLevel),
            "é".as_bytes().to_vec()
        );
        assert!(token_to_bytes("<|im_end|>", TOKEN_TYPE_CONTROL, Vocabulary::ByteLevel).is_empty());
        assert_eq!(
            token_to_bytes("<0x0A>", TOKEN_TYPE_BYTE, Vocabulary::SentencePiece),
            b"\n".to_vec()
        );
        assert_eq!(
            token_to_bytes("▁Paris", 1, Vocabulary::SentencePiece),
            b" Paris".to_vec()
        );
    }
}
