//! Chat templates: the Jinja template a GGUF file carries (`tokenizer.chat_template`), rendered with
//! minijinja the way Hugging Face's `apply_chat_template` does (trim_blocks, lstrip_blocks, loop
//! controls, `raise_exception`, the common Python string and dict methods), with ChatML as the
//! fallback when the file has no template.

use minijinja::{context, Environment, Error, ErrorKind, State, Value};

use crate::inference::{ChatMessage, InferenceError};

/// ChatML (`<|im_start|>role\ncontent<|im_end|>\n`), used when the model file has no template.
pub(crate) const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

const TEMPLATE_NAME: &str = "chat";

/// A compiled chat template with the model's BOS and EOS token texts.
pub(crate) struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Compiles `source` (ChatML when `None`). A template that does not compile is a load error.
    pub(crate) fn new(
        source: Option<&str>,
        bos_token: &str,
        eos_token: &str,
    ) -> Result<Self, InferenceError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.set_unknown_method_callback(python_methods);
        env.add_template_owned(TEMPLATE_NAME, source.unwrap_or(CHATML_TEMPLATE).to_string())
            .map_err(|e| {
                InferenceError::Load(format!("the chat template does not compile: {e}"))
            })?;
        Ok(ChatTemplate {
            env,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
        })
    }

    /// The prompt for `messages`, ending with the assistant's turn header (`add_generation_prompt`).
    pub(crate) fn render(&self, messages: &[ChatMessage]) -> Result<String, InferenceError> {
        if messages.is_empty() {
            return Err(InferenceError::InvalidRequest(
                "messages must not be empty".into(),
            ));
        }
        for (i, m) in messages.iter().enumerate() {
            if !matches!(m.role.as_str(), "system" | "user" | "assistant") {
                return Err(InferenceError::InvalidRequest(format!(
                    "messages[{i}].role must be system, user or assistant, not {:?}",
                    m.role
                )));
            }
        }
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| InferenceError::Runtime(format!("chat template: {e}")))?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => true,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(|e| match e.kind() {
                // The template refused the conversation (e.g. roles not alternating).
                ErrorKind::InvalidOperation => InferenceError::InvalidRequest(format!(
                    "the model's chat template refused the conversation: {}",
                    e.detail().unwrap_or("invalid conversation")
                )),
                _ => InferenceError::Runtime(format!("the chat template failed: {e}")),
            })
    }
}

/// `raise_exception(message)`: templates call it to refuse a conversation they cannot format.
fn raise_exception(message: String) -> Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

/// `strftime_now(format)`: the current local date (Llama 3.x templates print it).
fn strftime_now(format: String) -> Result<Value, Error> {
    use std::fmt::Write;
    let mut out = String::new();
    write!(out, "{}", chrono::Local::now().format(&format))
        .map_err(|_| Error::new(ErrorKind::InvalidOperation, "bad strftime format"))?;
    Ok(Value::from(out))
}

fn arg_str(args: &[Value], i: usize) -> Option<&str> {
    args.get(i).and_then(|v| v.as_str())
}

/// The Python methods HF templates call on strings and dicts (`content.strip()`,
/// `message.get('x')`, `d.items()`), which plain Jinja in minijinja does not have.
fn python_methods(
    _state: &State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    if let Some(s) = value.as_str() {
        let chars = |i: usize| -> Vec<char> {
            arg_str(args, i)
                .map(|c| c.chars().collect())
                .unwrap_or_default()
        };
        let trim_set = |i: usize| {
            let set = chars(i);
            move |c: char| {
                if set.is_empty() {
                    c.is_whitespace()
                } else {
                    set.contains(&c)
                }
            }
        };
        return Ok(match method {
            "strip" => Value::from(s.trim_matches(trim_set(0))),
            "lstrip" => Value::from(s.trim_start_matches(trim_set(0))),
            "rstrip" => Value::from(s.trim_end_matches(trim_set(0))),
            "lower" => Value::from(s.to_lowercase()),
            "upper" => Value::from(s.to_uppercase()),
            "title" | "capitalize" => {
                let mut c = s.chars();
                Value::from(match c.next() {
                    Some(first) => first.to_uppercase().chain(c).collect::<String>(),
                    None => String::new(),
                })
            }
            "startswith" => Value::from(arg_str(args, 0).is_some_and(|p| s.starts_with(p))),
            "endswith" => Value::from(arg_str(args, 0).is_some_and(|p| s.ends_with(p))),
            "replace" => match (arg_str(args, 0), arg_str(args, 1)) {
                (Some(from), Some(to)) => Value::from(s.replace(from, to)),
                _ => return Err(Error::new(ErrorKind::MissingArgument, "replace(old, new)")),
            },
            "split" => {
                let parts: Vec<Value> = match arg_str(args, 0) {
                    Some(sep) if !sep.is_empty() => s.split(sep).map(Value::from).collect(),
                    _ => s.split_whitespace().map(Value::from).collect(),
                };
                Value::from(parts)
            }
            "find" => Value::from(
                arg_str(args, 0)
                    .and_then(|p| s.find(p))
                    .map(|i| s[..i].chars().count() as i64)
                    .unwrap_or(-1),
            ),
            "count" => Value::from(
                arg_str(args, 0)
                    .filter(|p| !p.is_empty())
                    .map(|p| s.matches(p).count())
                    .unwrap_or(0),
            ),
            "join" => {
                let items: Vec<String> = match args.first() {
                    Some(list) => list.try_iter()?.map(|v| v.to_string()).collect(),
                    None => Vec::new(),
                };
                Value::from(items.join(s))
            }
            _ => return Err(Error::from(ErrorKind::UnknownMethod)),
        });
    }
    if value.kind() == minijinja::value::ValueKind::Map {
        return match method {
            "items" => {
                let mut items = Vec::new();
                for key in value.try_iter()? {
                    let v = value.get_item(&key)?;
                    items.push(Value::from(vec![key, v]));
                }
                Ok(Value::from(items))
            }
            "keys" => Ok(Value::from(value.try_iter()?.collect::<Vec<_>>())),
            "values" => {
                let mut values = Vec::new();
                for key in value.try_iter()? {
                    values.push(value.get_item(&key)?);
                }
                Ok(Value::from(values))
            }
            "get" => {
                let key = args.first().cloned().unwrap_or_default();
                let v = value.get_item(&key)?;
                Ok(if v.is_undefined() {
                    args.get(1).cloned().unwrap_or(Value::from(()))
                } else {
                    v
                })
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        };
    }
    Err(Error::from(ErrorKind::UnknownMethod))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(role: &str, content: &str) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }

    #[test]
    fn chatml_fallback_and_validation() {
        let t = ChatTemplate::new(None, "<s>", "</s>").expect("compiles");
        let text = t
            .render(&[msg("system", "Be brief."), msg("user", "Hi")])
            .expect("renders");
        assert_eq!(
            text,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        assert!(matches!(
            t.render(&[]),
            Err(InferenceError::InvalidRequest(_))
        ));
        assert!(matches!(
            t.render(&[msg("tool", "x")]),
            Err(InferenceError::InvalidRequest(_))
        ));
    }

    #[test]
    fn hf_template_features() {
        // Python string methods, loop, bos/eos, raise_exception, trim_blocks/lstrip_blocks.
        let source = "{{ bos_token }}{% for m in messages %}\n  {% if m['role'] == 'assistant' and loop.first %}{{ raise_exception('first message must not be the assistant') }}{% endif %}\n  [{{ m['role'].upper() }}] {{ m['content'].strip() }}{% if not loop.last %}|{% endif %}\n{% endfor %}{% if add_generation_prompt %}>{% endif %}{{ eos_token }}";
        let t = ChatTemplate::new(Some(source), "<s>", "</s>").expect("compiles");
        let text = t
            .render(&[msg("user", "  hello  "), msg("assistant", "hi")])
            .expect("renders");
        // trim_blocks drops the newline after a block tag; lstrip_blocks only the indentation before one.
        assert_eq!(text, "<s>  [USER] hello|  [ASSISTANT] hi></s>");
        let refused = t.render(&[msg("assistant", "x")]);
        assert!(
            matches!(&refused, Err(InferenceError::InvalidRequest(m)) if m.contains("first message")),
            "{refused:?}"
        );
        assert!(matches!(
            ChatTemplate::new(Some("{% for %}"), "", ""),
            Err(InferenceError::Load(_))
        ));
    }
}
