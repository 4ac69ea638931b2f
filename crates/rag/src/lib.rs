//! The one owner of the contracts between `chat` and its dependencies: plain-Rust
//! mirrors of the `chatgate:retriever` and `chatgate:completion` WIT packages
//! (`wit/deps/`), their limits, the validation every side applies, and macros that
//! convert to and from the bindings `wit_bindgen::generate!` makes in each component.
//!
//! Components keep their logic in these types, so it builds and is tested natively;
//! their wasm adapters only call [`retriever_conversions!`] or
//! [`completion_conversions!`] next to their bindings and `.into()` across. A change
//! to the WIT that these types do not follow fails the wasm build of every component
//! at the macro, not at runtime.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod completion;
pub mod retriever;

/// `From` conversions both ways between the [`retriever`] types and the bindings of
/// `chatgate:retriever/retriever` that `wit_bindgen::generate!` made at the given path
/// (`exports::chatgate::retriever::retriever` in a provider, or
/// `chatgate::retriever::retriever` in an importer). Expand it in the module that holds
/// the bindings: trait impls for the generated types can only be written in their crate.
#[macro_export]
macro_rules! retriever_conversions {
    ($($wit:ident)::+) => {
        const _: () = {
            use $($wit)::+ as wit;
            use $crate::retriever as rag;

            $crate::records_both_ways!(wit, rag;
                Passage { id, title, content, source, score, metadata }
                Filter { field, value }
                FilterRefusal { field, message }
            );

            impl From<wit::RetrievalError> for rag::RetrievalError {
                fn from(error: wit::RetrievalError) -> Self {
                    use rag::RetrievalError as R;
                    use wit::RetrievalError as W;
                    match error {
                        W::InvalidQuery(m) => R::InvalidQuery(m),
                        W::InvalidFilter(refusal) => R::InvalidFilter(refusal.into()),
                        W::IndexUnavailable(m) => R::IndexUnavailable(m),
                        W::Upstream(m) => R::Upstream(m),
                        W::RateLimited(retry_after_seconds) => R::RateLimited {
                            retry_after_seconds,
                        },
                        W::Timeout(m) => R::Timeout(m),
                    }
                }
            }

            impl From<rag::RetrievalError> for wit::RetrievalError {
                fn from(error: rag::RetrievalError) -> Self {
                    use rag::RetrievalError as R;
                    use wit::RetrievalError as W;
                    match error {
                        R::InvalidQuery(m) => W::InvalidQuery(m),
                        R::InvalidFilter(refusal) => W::InvalidFilter(refusal.into()),
                        R::IndexUnavailable(m) => W::IndexUnavailable(m),
                        R::Upstream(m) => W::Upstream(m),
                        R::RateLimited {
                            retry_after_seconds,
                        } => W::RateLimited(retry_after_seconds),
                        R::Timeout(m) => W::Timeout(m),
                    }
                }
            }
        };
    };
}

/// `From` conversions both ways between the [`completion`] types and the bindings of
/// `chatgate:completion/completion` at the given path; see [`retriever_conversions!`].
/// A [`completion::ChatCompletion`] carries its text as `content`: the WIT record's
/// `message` is always the assistant's, so the role is set on the way out and not read
/// on the way in.
#[macro_export]
macro_rules! completion_conversions {
    ($($wit:ident)::+) => {
        const _: () = {
            use $($wit)::+ as wit;
            use $crate::completion as rag;

            $crate::enums_both_ways!(wit, rag;
                Role { System, User, Assistant }
                FinishReason { Stop, Length, ContentFilter }
            );
            $crate::records_both_ways!(wit, rag;
                Options { model, temperature, top_p, max_tokens, stop, seed, response_format, user, traceparent }
                Usage { prompt_tokens, completion_tokens }
                StreamStart { model }
                Delta { content }
            );

            impl From<wit::Message> for rag::Message {
                fn from(message: wit::Message) -> Self {
                    rag::Message {
                        role: message.role.into(),
                        content: message.content,
                    }
                }
            }

            impl From<rag::Message> for wit::Message {
                fn from(message: rag::Message) -> Self {
                    wit::Message {
                        role: message.role.into(),
                        content: message.content,
                    }
                }
            }

            impl From<wit::ChatCompletion> for rag::ChatCompletion {
                fn from(answer: wit::ChatCompletion) -> Self {
                    rag::ChatCompletion {
                        model: answer.model,
                        content: answer.message.content,
                        finish_reason: answer.finish_reason.into(),
                        usage: answer.usage.into(),
                    }
                }
            }

            impl From<rag::ChatCompletion> for wit::ChatCompletion {
                fn from(answer: rag::ChatCompletion) -> Self {
                    wit::ChatCompletion {
                        model: answer.model,
                        message: wit::Message {
                            role: wit::Role::Assistant,
                            content: answer.content,
                        },
                        finish_reason: answer.finish_reason.into(),
                        usage: answer.usage.into(),
                    }
                }
            }

            impl From<wit::StreamEnd> for rag::StreamEnd {
                fn from(end: wit::StreamEnd) -> Self {
                    rag::StreamEnd {
                        model: end.model,
                        finish_reason: end.finish_reason.into(),
                        usage: end.usage.map(Into::into),
                    }
                }
            }

            impl From<rag::StreamEnd> for wit::StreamEnd {
                fn from(end: rag::StreamEnd) -> Self {
                    wit::StreamEnd {
                        model: end.model,
                        finish_reason: end.finish_reason.into(),
                        usage: end.usage.map(Into::into),
                    }
                }
            }

            impl From<wit::CompletionError> for rag::CompletionError {
                fn from(error: wit::CompletionError) -> Self {
                    use rag::CompletionError as R;
                    use wit::CompletionError as W;
                    match error {
                        W::RateLimited(limit) => R::RateLimited {
                            retry_after_seconds: limit.retry_after_seconds,
                            message: limit.message,
                        },
                        W::UpstreamUnavailable(m) => R::UpstreamUnavailable(m),
                        W::Timeout(m) => R::Timeout(m),
                        W::InvalidRequest(refusal) => R::InvalidRequest {
                            message: refusal.message,
                            param: refusal.param,
                        },
                        W::Unauthorized(m) => R::Unauthorized(m),
                        W::ContentFiltered(m) => R::ContentFiltered(m),
                        W::Internal(m) => R::Internal(m),
                    }
                }
            }

            impl From<rag::CompletionError> for wit::CompletionError {
                fn from(error: rag::CompletionError) -> Self {
                    use rag::CompletionError as R;
                    use wit::CompletionError as W;
                    match error {
                        R::RateLimited {
                            retry_after_seconds,
                            message,
                        } => W::RateLimited(wit::RateLimit {
                            retry_after_seconds,
                            message,
                        }),
                        R::UpstreamUnavailable(m) => W::UpstreamUnavailable(m),
                        R::Timeout(m) => W::Timeout(m),
                        R::InvalidRequest { message, param } => {
                            W::InvalidRequest(wit::Refusal { message, param })
                        }
                        R::Unauthorized(m) => W::Unauthorized(m),
                        R::ContentFiltered(m) => W::ContentFiltered(m),
                        R::Internal(m) => W::Internal(m),
                    }
                }
            }
        };
    };
}

/// `From` both ways between records whose fields are the same on both sides, moved as
/// they are: for [`retriever_conversions!`] and [`completion_conversions!`], which pass
/// the paths their `use` brought in. A field the WIT adds or renames fails here.
#[doc(hidden)]
#[macro_export]
macro_rules! records_both_ways {
    ($wit:ident, $rag:ident; $($ty:ident { $($field:ident),* $(,)? })*) => {
        $(
            impl From<$wit::$ty> for $rag::$ty {
                fn from(value: $wit::$ty) -> Self {
                    $rag::$ty { $($field: value.$field),* }
                }
            }

            impl From<$rag::$ty> for $wit::$ty {
                fn from(value: $rag::$ty) -> Self {
                    $wit::$ty { $($field: value.$field),* }
                }
            }
        )*
    };
}

/// `From` both ways between enums whose unit variants are the same on both sides; see
/// [`records_both_ways!`]. A case the WIT adds fails the match here.
#[doc(hidden)]
#[macro_export]
macro_rules! enums_both_ways {
    ($wit:ident, $rag:ident; $($ty:ident { $($case:ident),* $(,)? })*) => {
        $(
            impl From<$wit::$ty> for $rag::$ty {
                fn from(value: $wit::$ty) -> Self {
                    match value {
                        $($wit::$ty::$case => $rag::$ty::$case),*
                    }
                }
            }

            impl From<$rag::$ty> for $wit::$ty {
                fn from(value: $rag::$ty) -> Self {
                    match value {
                        $($rag::$ty::$case => $wit::$ty::$case),*
                    }
                }
            }
        )*
    };
}
