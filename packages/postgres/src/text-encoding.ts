/**
 * PostgreSQL `text` cannot hold NUL, and the UTF-8 the driver sends cannot carry a lone
 * UTF-16 surrogate (it becomes U+FFFD, so two different ids would meet in one row). Ids
 * are data the engine accepts whole (any string of 1 to 512 characters), so every id and
 * key is stored through this reversible encoding rather than refused:
 *
 * - a string with no NUL, no U+0001 and no lone surrogate is stored as it is (every id a
 *   person would type, emoji included);
 * - any other string has each such character escaped with U+0001: NUL as `\u0001` + `0`,
 *   U+0001 as `\u0001` + `1`, a lone surrogate U+D800+n as `\u0001` + `s` + U+E000+n.
 *
 * An escaped string contains U+0001 and a verbatim one never does, so no two strings share
 * a stored form. The escaped form is at most 5 UTF-8 bytes per character (512-character ids
 * stay within PostgreSQL's btree limit of about 2,700 bytes per index entry).
 */
const ESCAPE = '\u0001';
/**
 * Characters that make a string take the escaped form (surrogates are checked one by one).
 * Control characters are the point here.
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: NUL and U+0001 are what it looks for.
const SPECIAL = /[\u0000\u0001\ud800-\udfff]/;
const PRIVATE_USE_BASE = 0xe000;
const SURROGATE_BASE = 0xd800;

/** The stored form of `text`: itself unless it holds NUL, U+0001 or a lone surrogate. */
export function encodeText(text: string): string {
  if (!SPECIAL.test(text)) return text;
  let out = '';
  let changed = false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0) {
      out += `${ESCAPE}0`;
      changed = true;
    } else if (code === 1) {
      out += `${ESCAPE}1`;
      changed = true;
    } else if (code >= 0xd800 && code <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        // A well-formed pair: UTF-8 carries it.
        out += text[i]! + text[i + 1]!;
        i += 1;
      } else {
        out += `${ESCAPE}s${String.fromCharCode(PRIVATE_USE_BASE + code - SURROGATE_BASE)}`;
        changed = true;
      }
    } else if (code >= 0xdc00 && code <= 0xdfff) {
      out += `${ESCAPE}s${String.fromCharCode(PRIVATE_USE_BASE + code - SURROGATE_BASE)}`;
      changed = true;
    } else {
      out += text[i]!;
    }
  }
  // Only well-formed surrogate pairs: the string is stored as it is.
  return changed ? out : text;
}

/** The string whose stored form is `stored` (the inverse of {@link encodeText}). */
export function decodeText(stored: string): string {
  if (!stored.includes(ESCAPE)) return stored;
  let out = '';
  for (let i = 0; i < stored.length; i++) {
    const char = stored[i]!;
    if (char !== ESCAPE) {
      out += char;
      continue;
    }
    const tag = stored[i + 1];
    if (tag === '0') out += '\u0000';
    else if (tag === '1') out += ESCAPE;
    else if (tag === 's') {
      out += String.fromCharCode(stored.charCodeAt(i + 2) - PRIVATE_USE_BASE + SURROGATE_BASE);
      i += 1;
    } else {
      throw new Error(`Corrupt stored id: U+0001 followed by ${JSON.stringify(tag)}`);
    }
    i += 1;
  }
  return out;
}

/** {@link encodeText} for an optional value. */
export function encodeOptional(text: string | undefined): string | null {
  return text === undefined ? null : encodeText(text);
}
