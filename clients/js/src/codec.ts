/** Frame encoding: JSON text frames or MessagePack binary frames. */

import { decode as msgpackDecode, encode as msgpackEncode } from '@msgpack/msgpack';

import { SUBPROTOCOL_JSON, SUBPROTOCOL_MSGPACK } from './protocol.js';

/** The two wire formats. */
export type Format = 'json' | 'msgpack';

/** The subprotocol that selects `format`. */
export function subprotocolOf(format: Format): string {
  return format === 'msgpack' ? SUBPROTOCOL_MSGPACK : SUBPROTOCOL_JSON;
}

/** Encodes a frame for sending: a string (JSON) or bytes (MessagePack). */
export function encodeFrame(format: Format, frame: object): string | Uint8Array {
  return format === 'msgpack' ? msgpackEncode(frame) : JSON.stringify(frame);
}

/** Bytes of a binary frame as the WebSocket implementations deliver them. */
function bytesOf(data: unknown): Uint8Array | null {
  if (data instanceof Uint8Array) return data; // includes Node's Buffer
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data) && data.every((part) => part instanceof Uint8Array)) {
    // `ws` with binaryType 'fragments'.
    const parts = data as Uint8Array[];
    const out = new Uint8Array(parts.reduce((sum, part) => sum + part.byteLength, 0));
    let offset = 0;
    for (const part of parts) {
      out.set(part, offset);
      offset += part.byteLength;
    }
    return out;
  }
  return null;
}

/**
 * Decodes one received frame, whatever the negotiated format: text frames are JSON and
 * binary frames MessagePack (the gateway's rule as well). Throws when the frame is neither.
 */
export function decodeFrame(data: unknown): unknown {
  if (typeof data === 'string') return JSON.parse(data);
  const bytes = bytesOf(data);
  if (bytes === null) throw new TypeError(`unsupported frame data (${Object.prototype.toString.call(data)})`);
  return msgpackDecode(bytes);
}
