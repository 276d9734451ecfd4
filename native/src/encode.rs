//! Log fields -> one TCP frame (big-endian length + packed LoggerMsg), for the Python
//! client: its logging handler's per-call cost is mostly building the message with pycapnp
//! field by field. The client uses this when the module is installed and pycapnp otherwise;
//! clients/python/tests check that both encode the same message.

use capnp::message::{Builder, HeapAllocator};
use capnp::serialize_packed;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

use crate::logger_capnp::{logger_msg, Level};

/// The 15 text fields in schema order (LoggerMsg without `level`).
pub const TEXT_FIELDS: usize = 15;

fn set_text(root: &mut logger_msg::Builder, index: usize, value: &str) {
    match index {
        0 => root.set_timestamp(value),
        1 => root.set_hostname(value),
        2 => root.set_logger_name(value),
        3 => root.set_module(value),
        4 => root.set_filename(value),
        5 => root.set_function_name(value),
        6 => root.set_line_number(value),
        7 => root.set_message(value),
        8 => root.set_path_name(value),
        9 => root.set_process_id(value),
        10 => root.set_process_name(value),
        11 => root.set_thread_id(value),
        12 => root.set_thread_name(value),
        13 => root.set_service_name(value),
        _ => root.set_stack_trace(value),
    }
}

/// `encode_frame(level, texts)`: `texts` is a tuple of the 15 text fields in schema order;
/// None and "" are left unset, other non-str values are converted with str().
#[pyfunction]
pub fn encode_frame<'py>(py: Python<'py>, level: u16, texts: &Bound<'py, PyTuple>) -> PyResult<Bound<'py, PyBytes>> {
    if texts.len() != TEXT_FIELDS {
        return Err(PyValueError::new_err(format!("expected {TEXT_FIELDS} text fields, got {}", texts.len())));
    }
    let level = Level::try_from(level).map_err(|e| PyValueError::new_err(format!("unknown level {}", e.0)))?;
    let mut message = Builder::new(HeapAllocator::new().first_segment_words(128));
    {
        let mut root = message.init_root::<logger_msg::Builder>();
        root.set_level(level);
        for (index, item) in texts.iter().enumerate() {
            if item.is_none() {
                continue;
            }
            let text = match item.downcast::<PyString>() {
                Ok(s) => s.clone(),
                Err(_) => item.str()?,
            };
            let value = text.to_string_lossy();
            if !value.is_empty() {
                set_text(&mut root, index, &value);
            }
        }
    }
    let mut out: Vec<u8> = Vec::with_capacity(512);
    out.extend_from_slice(&[0, 0, 0, 0]);
    serialize_packed::write_message(&mut out, &message)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    let length = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&length.to_be_bytes());
    Ok(PyBytes::new(py, &out))
}
