// Signs the ballot in the voter's browser (WebCrypto Ed25519), so that the server never
// holds the voter's key. Where the browser cannot, the form is sent as it is and the server
// signs with a custodial credential (the board marks it). Format: docs/ballot-format.md.
const form = document.getElementById("cast-form");

function hex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

// Canonical JSON for the ballot object: keys in code-point order, no whitespace. Every
// string in a ballot is ASCII (hex, question and option ids), where JSON.stringify agrees
// with the canonical encoding.
function canonical(value) {
  if (Array.isArray(value)) return "[" + value.map(canonical).join(",") + "]";
  if (value !== null && typeof value === "object") {
    const keys = Object.keys(value).sort();
    return "{" + keys.map((k) => JSON.stringify(k) + ":" + canonical(value[k])).join(",") + "}";
  }
  return JSON.stringify(value);
}

function answers() {
  const out = {};
  for (const input of form.querySelectorAll("input[data-question]")) {
    (out[input.dataset.question] ||= []).push(input.value);
  }
  for (const id of (form.dataset.questions || "").split(" ").filter(Boolean)) {
    out[id] ||= [];
  }
  for (const id of Object.keys(out)) out[id].sort();
  return out;
}

async function sign() {
  const keys = await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"]);
  const credential = hex(await crypto.subtle.exportKey("raw", keys.publicKey));
  const ballot = {
    answers: answers(),
    credential,
    nonce: form.dataset.nonce,
    round: form.dataset.roundHash,
  };
  const message = new TextEncoder().encode("yishi-v1/ballot\n" + canonical(ballot));
  const signature = hex(await crypto.subtle.sign({ name: "Ed25519" }, keys.privateKey, message));
  return { credential, signature };
}

if (form && window.crypto && crypto.subtle) {
  let sending = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (sending) return;
    sending = true;
    form.querySelector("button[type=submit]").disabled = true;
    try {
      const { credential, signature } = await sign();
      form.elements.credential.value = credential;
      form.elements.signature.value = signature;
      form.dataset.signed = "browser";
    } catch (error) {
      // No Ed25519 in this browser: the server signs (custodial).
      form.elements.credential.value = "";
      form.elements.signature.value = "";
      form.dataset.signed = "server";
    }
    form.submit();
  });
  const note = document.getElementById("signing-note");
  if (note) note.hidden = false;
}
