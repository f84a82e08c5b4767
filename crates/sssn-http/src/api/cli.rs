//! The command-line shape of a route: the `sssn` client subcommand, its arguments and help.

use super::*;

/// What a command-line argument takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CliValue {
    /// A switch (`--exclusive`).
    Flag,
    /// Text.
    Text,
    /// An integer ≥ 0, with its default.
    Count {
        /// Value when not given.
        default: Option<usize>,
    },
    /// A sequence number.
    Seq,
    /// A number (epoch seconds).
    Number,
    /// A duration (`500ms`, `10s`, `5m`), sent as milliseconds.
    Duration,
    /// One or more message ids, positional.
    Ids,
    /// JSON text, positional; stdin when omitted or `-`.
    Json,
}

/// One argument of a client subcommand (besides `--url` and `--token`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CliArg {
    /// The option's long name (`--limit`) or the positional's id.
    pub name: &'static str,
    /// Help text.
    pub help: &'static str,
    /// What it takes.
    pub value: CliValue,
    /// The placeholder in help (`RECIPIENT`); empty: one that fits the value.
    pub value_name: &'static str,
    /// Options it cannot be combined with.
    pub conflicts_with: &'static [&'static str],
}

impl CliArg {
    /// The option for a query parameter: same name, help, type and default.
    pub const fn param(p: Param) -> Self {
        let value = match p.ty {
            ParamType::Count { default } => CliValue::Count {
                default: Some(default),
            },
            ParamType::Bool { .. } => CliValue::Flag,
            ParamType::Text | ParamType::Choice { .. } => CliValue::Text,
            ParamType::Seq => CliValue::Seq,
            ParamType::Number => CliValue::Number,
        };
        Self {
            name: p.name,
            help: p.description,
            value,
            value_name: "",
            conflicts_with: &[],
        }
    }

    /// The option (or positional ids) for a body field, under `name`; a duration for
    /// milliseconds.
    pub const fn field(f: Field, name: &'static str) -> Self {
        let value = match f.ty {
            FieldType::Ids => CliValue::Ids,
            FieldType::Millis => CliValue::Duration,
            FieldType::Text => CliValue::Text,
            FieldType::EpochSeconds => CliValue::Number,
            FieldType::Count => CliValue::Count { default: None },
        };
        Self {
            name,
            help: f.description,
            value,
            value_name: "",
            conflicts_with: &[],
        }
    }

    pub(super) const fn conflicts(mut self, with: &'static [&'static str]) -> Self {
        self.conflicts_with = with;
        self
    }

    pub(super) const fn named(mut self, value_name: &'static str) -> Self {
        self.value_name = value_name;
        self
    }
}

/// A client subcommand of the `sssn` command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CliCommand {
    /// The subcommand (`read`, `dead-letters`).
    pub name: &'static str,
    /// One line of help: what it does and prints.
    pub about: &'static str,
    /// Its arguments.
    pub args: &'static [CliArg],
}

// ---- command-line arguments that are not parameters or fields -----------------------------

/// `sssn write DATA`.
pub const ARG_DATA: CliArg = CliArg {
    name: "data",
    help: "JSON text (from stdin when omitted or \"-\").",
    value: CliValue::Json,
    value_name: "",
    conflicts_with: &[],
};
/// `sssn write --direct`.
pub const ARG_DIRECT: CliArg = CliArg::param(DIRECT.param()).conflicts(&["content", "to"]);
/// `sssn write --content`.
pub const ARG_CONTENT: CliArg = CliArg {
    name: "content",
    help: "The body is content (a JSON object) stored as is.",
    value: CliValue::Flag,
    value_name: "",
    conflicts_with: &[],
};
/// `sssn write --batch`.
pub const ARG_BATCH: CliArg = CliArg {
    name: "batch",
    help: "The body is a JSON array written in one batch (POST /channels/{id}/batch).",
    value: CliValue::Flag,
    value_name: "",
    conflicts_with: &[],
};
/// `sssn write --to RECIPIENT`.
pub const ARG_TO: CliArg = CliArg {
    name: "to",
    help: "Address the message(s) to this recipient (mailboxes); sent as a direct write in your name.",
    value: CliValue::Text,
    value_name: "RECIPIENT",
    conflicts_with: &[],
};
/// `sssn tail --count N`.
pub const ARG_COUNT: CliArg = CliArg {
    name: "count",
    help: "Stop after this many messages.",
    value: CliValue::Count { default: None },
    value_name: "",
    conflicts_with: &[],
};
/// The ids of the settling commands.
pub const ARG_IDS: CliArg = CliArg::field(MESSAGE_IDS, "ids");
/// `sssn nack --delay`.
pub const ARG_DELAY: CliArg = CliArg::field(DELAY_MS, "delay");
/// `sssn reject --reason`.
pub const ARG_REASON: CliArg = CliArg::field(REASON, "reason").named("TEXT");
/// `sssn evict --before`.
pub const ARG_BEFORE: CliArg = CliArg::field(BEFORE, "before");
/// `sssn history --message-id`.
pub const ARG_MESSAGE_ID: CliArg = CliArg {
    name: "message-id",
    ..CliArg::param(HISTORY_MESSAGE_ID.param())
}
.named("MESSAGE_ID")
.conflicts(&["start", "end"]);
/// `sssn evict --max-count`.
pub const ARG_MAX_COUNT: CliArg = CliArg::field(MAX_COUNT, "max-count");
