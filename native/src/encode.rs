//! Log fields -> one TCP frame (big-endian length + packed LoggerMsg), for the Python
//! client: its logging handler's per-call cost is mostly building the message with pycapnp
//! field by field. The client uses this when the module is installed and pycapnp otherwise;
//! clients/python/tests check that both encode the same message.

use capnp::message::{Builder, HeapAllocator};
use capnp::serialize_packed;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

use crate::format::TEXT_FIELDS;
use crate::logger_capnp::{logger_msg, Level};

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

/// A Python value as UTF-8 text: str() for non-str values; a str that cannot be encoded
/// (lone surrogates, e.g. undecodable bytes that Python kept with `surrogateescape`) is
/// turned back into its bytes and decoded with U+FFFD for what is not UTF-8, as the server
/// does with raw bytes. The client's pycapnp encoder does the same (`encoding.lossy_text`).
fn text_of(item: &Bound<'_, PyAny>) -> PyResult<String> {
    let text = match item.downcast::<PyString>() {
        Ok(s) => s.clone(),
        Err(_) => item.str()?,
    };
    if let Ok(s) = text.to_str() {
        return Ok(s.to_owned());
    }
    let bytes = match text.call_method1("encode", ("utf-8", "surrogateescape")) {
        Ok(b) => b,
        Err(_) => text.call_method1("encode", ("utf-8", "surrogatepass"))?,
    };
    let bytes = bytes.downcast_into::<PyBytes>()?;
    Ok(String::from_utf8_lossy(bytes.as_bytes()).into_owned())
}

/// `encode_frame(level, texts, attributes=None)`: `texts` is a tuple of the 15 text fields in
/// schema order; None and "" are left unset, other non-str values are converted with str().
/// `attributes`: a sequence of (key, value) pairs, kept in order, values str()'d; None or an
/// empty sequence leaves the list unset (the frame of a client that predates attributes).
#[pyfunction]
#[pyo3(signature = (level, texts, attributes=None))]
pub fn encode_frame<'py>(
    py: Python<'py>,
    level: u16,
    texts: &Bound<'py, PyTuple>,
    attributes: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyBytes>> {
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
            match text.to_str() {
                Ok("") => {}
                Ok(value) => set_text(&mut root, index, value),
                Err(_) => set_text(&mut root, index, &text_of(&text)?),
            }
        }
        if let Some(attributes) = attributes {
            set_attributes(&mut root, attributes)?;
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

fn set_attributes(root: &mut logger_msg::Builder, attributes: &Bound<'_, PyAny>) -> PyResult<()> {
    if attributes.is_none() {
        return Ok(());
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    for pair in attributes.try_iter()? {
        let pair = pair?;
        let (key, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair
            .extract()
            .map_err(|_| PyValueError::new_err("each attribute must be a (key, value) pair"))?;
        pairs.push((text_of(&key)?, text_of(&value)?));
    }
    if pairs.is_empty() {
        return Ok(());
    }
    let count = u32::try_from(pairs.len()).map_err(|_| PyValueError::new_err("too many attributes"))?;
    let mut list = root.reborrow().init_attributes(count);
    for (index, (key, value)) in pairs.iter().enumerate() {
        let mut attribute = list.reborrow().get(index as u32);
        attribute.set_key(key.as_str());
        attribute.set_value(value.as_str());
    }
    Ok(())
}
