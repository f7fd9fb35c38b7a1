//! Chat template from `tokenizer.chat_template`, rendered with minijinja (plus minijinja-contrib's
//! Python-method compatibility, e.g. `.strip()`, which HF templates use). Models without a
//! template fall back to ChatML (`<|im_start|>role\ncontent<|im_end|>\n`).

use minijinja::{context, Environment, Error, ErrorKind};
use serde::{Deserialize, Serialize};

use crate::LlmError;

/// One chat message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

pub(crate) struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
    pub from_model: bool,
}

impl ChatTemplate {
    pub fn new(source: Option<&str>, bos: String, eos: String) -> Result<Self, LlmError> {
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<String, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, msg))
        });
        let from_model = source.is_some();
        env.add_template_owned("chat", source.unwrap_or(CHATML).to_string())
            .map_err(|e| LlmError::Template(format!("chat template does not parse: {e}")))?;
        Ok(ChatTemplate {
            env,
            bos,
            eos,
            from_model,
        })
    }

    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, LlmError> {
        let t = self
            .env
            .get_template("chat")
            .map_err(|e| LlmError::Template(e.to_string()))?;
        t.render(context! {
            messages => messages,
            add_generation_prompt => true,
            bos_token => self.bos.as_str(),
            eos_token => self.eos.as_str(),
        })
        .map_err(|e| LlmError::Template(e.to_string()))
    }
}
