//! Protocol errors. Every variant is a client error (HTTP 400, or 415 for an
//! unsupported content type); each names the request field it is about.

/// A request (or response) that cannot be decoded / encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The body (or its JSON header) is not valid JSON of the expected form.
    #[error("invalid JSON{}: {message}", if field.is_empty() { String::new() } else { format!(" in {field}") })]
    Json {
        /// Field path (`""` for the whole document).
        field: String,
        /// Parser message (with line and column).
        message: String,
    },
    /// A field has the wrong form or value.
    #[error("{field}: {message}")]
    Field {
        /// Field path, e.g. `inputs[0].shape`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A required field is absent.
    #[error("{field} is required")]
    Missing {
        /// Field path.
        field: String,
    },
    /// Unknown V2 datatype name.
    #[error("{field}: unknown datatype '{datatype}'; expected one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, INT64, FP16, FP32, FP64, BYTES")]
    UnknownDatatype {
        /// Field path.
        field: String,
        /// The name given.
        datatype: String,
    },
    /// An element has the wrong JSON type for the datatype.
    #[error("{field}[{index}]: {message}")]
    Element {
        /// Field path of the data array.
        field: String,
        /// Flat element index.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// Element count differs from what the shape implies.
    #[error("{field}: shape {shape:?} holds {expected} elements but {actual} were given")]
    ElementCount {
        /// Field path.
        field: String,
        /// The shape.
        shape: Vec<i64>,
        /// Elements implied by the shape.
        expected: usize,
        /// Elements given.
        actual: usize,
    },
    /// `Inference-Header-Content-Length` exceeds the body.
    #[error("Inference-Header-Content-Length is {header_length} but the body has only {body_length} bytes")]
    HeaderLength {
        /// Header value.
        header_length: usize,
        /// Body size.
        body_length: usize,
    },
    /// The binary section ends before a tensor's declared size.
    #[error("{field}: binary_data_size is {declared} bytes but only {available} bytes of binary data remain")]
    Truncated {
        /// Field path.
        field: String,
        /// Declared size.
        declared: usize,
        /// Bytes left.
        available: usize,
    },
    /// `binary_data_size` disagrees with shape × datatype size.
    #[error("{field}: binary_data_size is {declared} bytes but shape {shape:?} of {datatype} needs {expected} bytes")]
    BinarySize {
        /// Field path.
        field: String,
        /// Declared size.
        declared: usize,
        /// Size the shape needs.
        expected: usize,
        /// The shape.
        shape: Vec<i64>,
        /// Datatype name.
        datatype: String,
    },
    /// BYTES binary data is malformed (length prefixes do not add up).
    #[error("{field}: {message}")]
    BytesEncoding {
        /// Field path.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Bytes left over after every binary tensor was read.
    #[error("{count} trailing bytes after the last binary tensor; binary_data_size values must add up to the binary section")]
    TrailingBytes {
        /// Leftover bytes.
        count: usize,
    },
    /// A requested output does not exist.
    #[error("{field}: the model has no output '{name}'; it has {}", available.join(", "))]
    UnknownOutput {
        /// Field path.
        field: String,
        /// Requested name.
        name: String,
        /// The model's outputs.
        available: Vec<String>,
    },
    /// The scoring endpoint does not accept this content type.
    #[error("unsupported content type '{content_type}'; send application/json or text/csv")]
    UnsupportedMediaType {
        /// The `Content-Type` given.
        content_type: String,
    },
    /// The caller's check of a declared shape refused it before the data
    /// was read (e.g. a batch above the model's limit); the message is the
    /// model contract's own.
    #[error("{0}")]
    Contract(String),
    /// A value cannot be represented in the chosen encoding.
    #[error("{field}: {message}")]
    Unrepresentable {
        /// Field path.
        field: String,
        /// What is wrong.
        message: String,
    },
}

impl ProtocolError {
    /// The HTTP status for this error: 415 for an unsupported content
    /// type, 400 otherwise.
    pub fn http_status(&self) -> u16 {
        match self {
            ProtocolError::UnsupportedMediaType { .. } => 415,
            _ => 400,
        }
    }

    pub(crate) fn field(field: impl Into<String>, message: impl Into<String>) -> ProtocolError {
        ProtocolError::Field {
            field: field.into(),
            message: message.into(),
        }
    }
}
