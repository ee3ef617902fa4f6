// Internal: secret key files without the secret passing through nlohmann.
//
// nlohmann/json keeps string values in std::string members and its lexer's
// token buffer, and frees them without wiping; its serializer grows its
// output string by reallocation. So the seed of an unsealed key file never
// enters it: parse_secret() copies the file into a buffer it owns, takes the
// seed's hex digits out with the bounded scan below (overwriting them with
// '0' in that copy), and gives nlohmann only the masked copy; encode_secret()
// has nlohmann write a placeholder and puts the digits into the output string
// afterwards. Every buffer that held secret bytes or their hex (the copy, the
// output, the digits) is wiped with sodium_memzero. What nlohmann still sees
// of a key file is public (type, keyid, public key) or sealed (the argon2id
// salt, nonce and ciphertext, useless without the passphrase).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace ota::keys::detail {

// Scans JSON text for every member named `key` whose value is a string
// (`"key" : "VALUE"`, escapes taken into account, so a key inside another
// string is not one). For each: checks that VALUE is at most out_cap hex
// digits with no escape, copies it into out (the last one found) with its
// length in *out_len, and overwrites it in text with '0' digits (same length,
// so the JSON stays valid). Returns how many were found (0: none), or -1 when
// a value is not plain hex or longer than out_cap (text is then left with
// every value found so far masked). Bounded: one pass over text.
int take_hex_member(std::string& text, std::string_view key, char* out, std::size_t out_cap, std::size_t* out_len);

}  // namespace ota::keys::detail
