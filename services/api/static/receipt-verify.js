// Checks a donation receipt in the browser, with nothing but WebCrypto.
//
// The same three checks as the standalone verifier (services/verifier/receipt.py):
// the tree head is signed by the ledger's Ed25519 key, the entry hashes to the
// receipt's leaf, and the inclusion proof leads from that leaf to the signed
// root (RFC 9162 §2.1.3.2). No library, no CDN: a donor's browser needs only
// this file, the receipt and the published key.
//
// Input, as GET /api/receipts/{entry_id} serves it:
//   receipt: {entry: {...}, canonical: "<the entry's canonical JSON>",
//             leaf_hash: hex, leaf_index: int, tree_size: int,
//             inclusion_proof: [hex, ...], tree_head: {...}}
//   head:    {tree_size: int, root_hash: hex, timestamp_ms: int,
//             signature: base64 or hex, key_id: hex or null}
//            (null: the receipt's own tree_head; its signature is checked all the same)
//   keys:    SubjectPublicKeyInfo PEM text (one key or several), one key object or
//            the list GET /api/transparency/public-keys serves ({key_id, public_key, ...});
//            the head picks its key by key_id, computed here from each key itself.
//
// A classic script (it works as <script src> and as <script type="module"> alike)
// that defines window.ReceiptVerify:
//   verifyReceipt(receipt, head, keys) -> Promise<{ok, steps: [{name, ok, detail}], entry}>
//     steps, in order: input, signature, entry, leaf_hash, inclusion. `entry` is
//     the entry parsed from the hashed text (null unless ok): show that one.
//   verifyElement(element), verifyAll(root), canonicalJson(value), STEP_LABELS
//
// On a page, every <div data-receipt-verify> holding data-receipt / data-head
// (JSON) and data-public-key (PEM) attributes, or a <script type="application/json">
// with {"receipt", "head", "public_key"}, is checked once the document is parsed.
// The verdict goes into its [data-receipt-verify-result] element (one is appended
// if there is none), and its data-receipt-verify-state becomes "verified" or
// "failed" (data-failed-step names the step).

(function () {
  "use strict";

  const TREE_HEAD_TAG = new TextEncoder().encode("charity-ledger-sth-v1");
  // DER of an Ed25519 SubjectPublicKeyInfo, up to the 32 key bytes (RFC 8410).
  const ED25519_SPKI_PREFIX = "302a300506032b6570032100";
  const HEX_HASH = /^[0-9a-fA-F]{64}$/;

  const STEP_LABELS = {
    input: "收据格式 Receipt format",
    signature: "树头签名 Tree head signature",
    entry: "记账条目 Journal entry",
    leaf_hash: "叶哈希 Leaf hash",
    inclusion: "包含证明 Inclusion proof",
  };

  class Invalid extends Error {}

  function fail(message) {
    throw new Invalid(message);
  }

  function hexToBytes(hex) {
    const out = new Uint8Array(hex.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
    return out;
  }

  function bytesToHex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function sameBytes(a, b) {
    return a.length === b.length && a.every((value, i) => value === b[i]);
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  function base64ToBytes(text) {
    // atob forgives missing padding and white space; the ledger writes neither.
    if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) return null;
    return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  }

  function subtle() {
    // WebCrypto exists only in secure contexts: HTTPS, or a page on this very machine.
    if (!globalThis.crypto || !globalThis.crypto.subtle) {
      fail("this browser withholds WebCrypto here: open the page over HTTPS");
    }
    return globalThis.crypto.subtle;
  }

  async function sha256(data) {
    return new Uint8Array(await subtle().digest("SHA-256", data));
  }

  const leafHash = (data) => sha256(concat(Uint8Array.of(0), data));
  const nodeHash = (left, right) => sha256(concat(Uint8Array.of(1), left, right));

  function u64BigEndian(value) {
    const out = new Uint8Array(8);
    new DataView(out.buffer).setBigUint64(0, BigInt(value));
    return out;
  }

  function treeHeadBytes(size, timestampMs, root) {
    return concat(TREE_HEAD_TAG, u64BigEndian(size), u64BigEndian(timestampMs), root);
  }

  // --- Reading untrusted JSON (the same rules as the Python verifier) ---

  function isObject(value) {
    return value !== null && typeof value === "object" && !Array.isArray(value);
  }

  function field(obj, name, what) {
    if (!Object.prototype.hasOwnProperty.call(obj, name)) fail(`the ${what} has no "${name}" field`);
    return obj[name];
  }

  function count(obj, name, what) {
    const value = field(obj, name, what);
    // Past 2^53 a JavaScript number is no longer the integer that was sent.
    if (!Number.isSafeInteger(value) || value < 0) {
      fail(`the ${what}'s "${name}" must be a whole number from 0 to 2^53-1`);
    }
    return value;
  }

  function hash(value, label) {
    if (typeof value !== "string" || !HEX_HASH.test(value)) fail(`${label} must be 64 hexadecimal digits`);
    return hexToBytes(value);
  }

  function signatureBytes(value) {
    if (typeof value !== "string") fail("the tree head's signature must be a base64 or hex string");
    const raw = /^[0-9a-fA-F]{128}$/.test(value) ? hexToBytes(value) : base64ToBytes(value);
    if (raw === null) fail("the tree head's signature is neither base64 nor hex");
    if (raw.length !== 64) fail(`an Ed25519 signature has 64 bytes, the tree head's has ${raw.length}`);
    return raw;
  }

  function parseHead(value) {
    if (!isObject(value)) fail("the tree head must be a JSON object");
    const keyId = value.key_id ?? null;
    if (keyId !== null && (typeof keyId !== "string" || !/^[0-9a-f]{64}$/.test(keyId))) {
      fail("the tree head's key_id must be 64 lowercase hex digits");
    }
    return {
      size: count(value, "tree_size", "tree head"),
      root: hash(field(value, "root_hash", "tree head"), "the tree head's root_hash"),
      timestampMs: count(value, "timestamp_ms", "tree head"),
      signature: signatureBytes(field(value, "signature", "tree head")),
      keyId,
    };
  }

  function parseReceipt(value) {
    if (!isObject(value)) fail("the receipt must be a JSON object");
    const entry = field(value, "entry", "receipt");
    if (!isObject(entry)) fail("the receipt's entry must be a JSON object");
    const proof = field(value, "inclusion_proof", "receipt");
    if (!Array.isArray(proof)) fail("the receipt's inclusion_proof must be a list of hex hashes");
    const canonical = value.canonical;
    if (canonical !== undefined && typeof canonical !== "string") {
      fail("the receipt's canonical must be a string");
    }
    return {
      entry,
      canonical,
      leaf: hash(field(value, "leaf_hash", "receipt"), "the receipt's leaf_hash"),
      index: count(value, "leaf_index", "receipt"),
      size: count(value, "tree_size", "receipt"),
      proof: proof.map((item, i) => hash(item, `the receipt's inclusion_proof element ${i}`)),
    };
  }

  // --- The ledger's keys, by key id (hex SHA-256 of the raw 32-byte key) ---

  function pemTexts(keys) {
    const list = Array.isArray(keys) ? keys : [keys];
    return list.map((k) => (isObject(k) ? k.public_key : k)).filter((k) => typeof k === "string");
  }

  async function publicKeys(keys) {
    const blocks = pemTexts(keys).flatMap((text) =>
      Array.from(text.matchAll(/-----BEGIN PUBLIC KEY-----([\s\S]*?)-----END PUBLIC KEY-----/g), (m) => m[1]),
    );
    if (blocks.length === 0) fail("no PEM public key was given");
    const byId = new Map();
    for (const body of blocks) {
      const der = base64ToBytes(body.replace(/\s+/g, ""));
      if (der === null || der.length !== 44 || bytesToHex(der.subarray(0, 12)) !== ED25519_SPKI_PREFIX) {
        fail("a public key is not an Ed25519 key in SubjectPublicKeyInfo PEM");
      }
      let key;
      try {
        key = await subtle().importKey("spki", der, { name: "Ed25519" }, false, ["verify"]);
      } catch (error) {
        fail(`this browser cannot check Ed25519 signatures (${error.name}): use the standalone verifier`);
      }
      byId.set(bytesToHex(await sha256(der.subarray(12))), key);
    }
    return byId;
  }

  async function checkSignature(head, keys) {
    const byId = await publicKeys(keys);
    let key;
    if (head.keyId !== null) {
      key = byId.get(head.keyId);
      if (!key) fail(`the tree head was signed by key ${head.keyId}, which is not among the keys given`);
    } else if (byId.size === 1) {
      key = byId.values().next().value;
    } else {
      fail("the tree head names no key, and several keys were given: give the one it was signed with");
    }
    const signed = treeHeadBytes(head.size, head.timestampMs, head.root);
    if (!(await subtle().verify({ name: "Ed25519" }, key, head.signature, signed))) {
      fail("the signature does not verify with the key: the head was altered or signed by another key");
    }
    return head.keyId === null ? "signed by the one key given" : `signed by key ${head.keyId}`;
  }

  // --- The entry's canonical bytes ---

  function deepEqual(a, b) {
    if (a === b) return true;
    if (Array.isArray(a)) {
      return Array.isArray(b) && a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
    }
    if (!isObject(a) || !isObject(b)) return false;
    const keys = Object.keys(a);
    return (
      keys.length === Object.keys(b).length &&
      keys.every((k) => Object.prototype.hasOwnProperty.call(b, k) && deepEqual(a[k], b[k]))
    );
  }

  function byCodePoint(a, b) {
    // Python sorts keys by code point; JavaScript's default sort, by UTF-16 unit.
    const x = Array.from(a, (c) => c.codePointAt(0));
    const y = Array.from(b, (c) => c.codePointAt(0));
    for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
    return x.length - y.length;
  }

  // The ledger's canonical JSON (services/ledger/domain/merkle.py: sorted keys, no
  // white space, UTF-8, nothing escaped but what JSON must), for receipts saved
  // before they carried `canonical`. It refuses what it cannot write exactly as
  // Python did: numbers that are not safe integers, and lone surrogates.
  function canonicalJson(value) {
    if (value === null || typeof value === "boolean") return JSON.stringify(value);
    if (typeof value === "number") {
      if (!Number.isSafeInteger(value)) fail(`the number ${value} cannot be reproduced exactly in a browser`);
      return JSON.stringify(value);
    }
    if (typeof value === "string") {
      if (/\p{Surrogate}/u.test(value)) fail("a text holds a lone surrogate, which no journal entry can");
      return JSON.stringify(value); // escapes exactly what Python's json and orjson escape
    }
    if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
    if (isObject(value)) {
      const keys = Object.keys(value).sort(byCodePoint);
      return `{${keys.map((k) => `${canonicalJson(k)}:${canonicalJson(value[k])}`).join(",")}}`;
    }
    fail(`a ${typeof value} value has no canonical JSON`);
  }

  function entryText(receipt) {
    if (receipt.canonical === undefined) {
      return { text: canonicalJson(receipt.entry), detail: "canonical form computed in the browser" };
    }
    let parsed;
    try {
      parsed = JSON.parse(receipt.canonical);
    } catch {
      fail("the receipt's canonical text is not JSON");
    }
    if (!deepEqual(parsed, receipt.entry)) {
      fail("the entry shown differs from the hashed canonical text: one of them was altered");
    }
    return { text: receipt.canonical, detail: "the entry shown is the hashed canonical text" };
  }

  // --- RFC 9162 §2.1.3.2 ---

  async function rootFromInclusion(leaf, index, size, proof) {
    // BigInt: JavaScript's bit operators work on 32 bits, a tree can be larger.
    let fn = BigInt(index);
    let sn = BigInt(size - 1);
    let r = leaf;
    for (const p of proof) {
      if (sn === 0n) return null; // the proof is longer than the path
      if (fn & 1n || fn === sn) {
        r = await nodeHash(p, r);
        while (!(fn & 1n) && fn !== 0n) {
          // the right edge: levels where the node has no sibling
          fn >>= 1n;
          sn >>= 1n;
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    return sn === 0n ? r : null;
  }

  async function checkInclusion(receipt, head) {
    if (receipt.size !== head.size) {
      fail(`the receipt is for a tree of ${receipt.size} entries, the signed head for ${head.size}`);
    }
    if (receipt.index >= receipt.size) {
      fail(`leaf_index ${receipt.index} is outside a tree of ${receipt.size} entries`);
    }
    const root = await rootFromInclusion(receipt.leaf, receipt.index, receipt.size, receipt.proof);
    if (root === null || !sameBytes(root, head.root)) {
      fail(`the proof does not lead from leaf_index ${receipt.index} to the signed root of ${head.size} entries`);
    }
    const moment = new Date(head.timestampMs);
    const when = Number.isNaN(moment.getTime()) ? `timestamp_ms ${head.timestampMs}` : moment.toISOString();
    // Entries are counted from 1 on the pages (the journal's seq); leaf_index counts from 0.
    return `entry ${receipt.index + 1} (leaf_index ${receipt.index}) is in the signed tree of ${head.size} entries (${when})`;
  }

  // --- The check ---

  async function step(name, check) {
    try {
      return { name, ok: true, detail: await check() };
    } catch (error) {
      if (!(error instanceof Invalid)) throw error;
      return { name, ok: false, detail: error.message };
    }
  }

  async function verifyReceipt(receipt, head, publicKeyPem) {
    let parsedReceipt;
    let parsedHead;
    const input = await step("input", () => {
      parsedReceipt = parseReceipt(receipt);
      parsedHead = parseHead(head ?? (isObject(receipt) ? receipt.tree_head : undefined));
      return "a receipt and a tree head";
    });
    if (!input.ok) return { ok: false, steps: [input], entry: null };

    // Each check stands on its own, so every one is reported, not just the first to fail.
    let text = null;
    const steps = [
      input,
      await step("signature", () => checkSignature(parsedHead, publicKeyPem)),
      await step("entry", () => {
        const found = entryText(parsedReceipt);
        text = found.text;
        return found.detail;
      }),
      await step("leaf_hash", async () => {
        if (text === null) fail("no canonical bytes to hash");
        if (!sameBytes(await leafHash(new TextEncoder().encode(text)), parsedReceipt.leaf)) {
          fail("the entry does not hash to the receipt's leaf_hash: the entry was altered");
        }
        return "SHA-256(0x00 || entry) is the leaf_hash";
      }),
      await step("inclusion", () => checkInclusion(parsedReceipt, parsedHead)),
    ];
    const ok = steps.every((s) => s.ok);
    return { ok, steps, entry: ok ? JSON.parse(text) : null };
  }

  // --- On a page ---

  function inputsOf(element) {
    const block = element.querySelector('script[type="application/json"]');
    if (block) {
      const data = JSON.parse(block.textContent);
      return [data.receipt, data.head ?? null, data.public_key ?? data.public_keys];
    }
    const head = element.dataset.head;
    return [JSON.parse(element.dataset.receipt), head ? JSON.parse(head) : null, element.dataset.publicKey];
  }

  function render(element, result) {
    let out = element.querySelector("[data-receipt-verify-result]");
    if (!out) {
      out = document.createElement("div");
      out.setAttribute("data-receipt-verify-result", "");
      out.setAttribute("role", "status");
      element.append(out);
    }
    const failed = result.steps.find((s) => !s.ok);
    const verdict = document.createElement("p");
    verdict.className = "receipt-verdict";
    // Text nodes only: a receipt's entry is data, never markup.
    verdict.textContent = failed
      ? `验证失败 Verification failed: ${STEP_LABELS[failed.name] ?? failed.name}`
      : "已验证 Verified";
    const list = document.createElement("ol");
    list.className = "receipt-steps";
    for (const s of result.steps) {
      const item = document.createElement("li");
      item.dataset.step = s.name;
      item.dataset.ok = String(s.ok);
      item.textContent = `${s.ok ? "✓" : "✗"} ${STEP_LABELS[s.name] ?? s.name}: ${s.detail}`;
      list.append(item);
    }
    out.replaceChildren(verdict, list);
    element.dataset.receiptVerifyState = failed ? "failed" : "verified";
    if (failed) element.dataset.failedStep = failed.name;
    else delete element.dataset.failedStep;
  }

  async function verifyElement(element) {
    let result;
    try {
      result = await verifyReceipt(...inputsOf(element));
    } catch (error) {
      // Unreadable JSON on the page, or a browser without what the check needs.
      const detail = String(error.message ?? error);
      result = { ok: false, steps: [{ name: "input", ok: false, detail }], entry: null };
    }
    render(element, result);
    return result;
  }

  function verifyAll(root = document) {
    return Promise.all(Array.from(root.querySelectorAll("[data-receipt-verify]"), verifyElement));
  }

  globalThis.ReceiptVerify = { verifyReceipt, verifyElement, verifyAll, canonicalJson, STEP_LABELS };

  if (typeof document !== "undefined") {
    // Once the document is parsed every receipt on it is there, wherever this script stands.
    if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => verifyAll());
    else verifyAll();
  }
})();
