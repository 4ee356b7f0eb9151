//! Where a model's files come from and how they are read: a directory or the Hugging Face
//! cache (`source`, `hub`), the read-only mapping (`mapped`), and the checkpoint formats
//! (`checkpoint/`: safetensors, sharded indexes, `pytorch_model.bin` and its restricted
//! unpickler), every parser of untrusted files in one folder.

pub mod checkpoint;
pub mod hub;
pub mod jacobian_lens;
pub mod mapped;
pub mod partial;
pub mod source;
pub mod tuned_lens;
