// What the tlora libraries export. They are compiled with hidden symbol visibility, so their
// internals stay private and cannot clash with a user's symbols; the declarations of the public
// headers sit between TLORA_API_BEGIN and TLORA_API_END, which export exactly those.
#pragma once

/// Opens the region of a public header whose declarations the libraries export.
#define TLORA_API_BEGIN _Pragma("GCC visibility push(default)")
/// Closes the region opened by TLORA_API_BEGIN.
#define TLORA_API_END _Pragma("GCC visibility pop")
