/**
 * The reference service's `wrap_as_json` value, byte for byte: serde_json of
 * `{ topic, payload: base64(payload) }` — field order topic, payload; no spaces; standard
 * base64 with padding. JSON.stringify escapes a string exactly as serde_json does for valid
 * UTF-8 (control characters as \n, \t, ... or lowercase \u00XX; `/` and non-ASCII unescaped).
 */
export function wrapPayload(topic: string, payload: Buffer): Buffer {
  return Buffer.from(
    `{"topic":${JSON.stringify(topic)},"payload":"${payload.toString('base64')}"}`,
  );
}
