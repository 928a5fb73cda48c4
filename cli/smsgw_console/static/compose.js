// The compose form: shows only the chosen target's field and kind of content, loads a saved command's
// variables, and asks the API's dry run (through /compose/analysis) about the content as the operator types.
// Typed text only ever reaches the page as text nodes (textContent, createTextNode), never as HTML.
import { FRAGMENT_HEADER } from "./console.js";

const DEBOUNCE_MS = 250;
const form = document.getElementById("compose-form");

const $ = (id) => document.getElementById(id);
const ANALYSED = new Set(["text", "content", "data", "data_coding", "command", "encoding"]);

function chosen(name) {
  const checked = form.querySelector(`input[name="${name}"]:checked`);
  return checked ? checked.value : "";
}

function showChosen() {
  const target = chosen("target") || "sim";
  for (const field of form.querySelectorAll("[data-target]")) field.hidden = field.dataset.target !== target;
  const content = chosen("content") || "text";
  for (const field of form.querySelectorAll("[data-content]")) field.hidden = field.dataset.content !== content;
  $("free-content").hidden = Boolean($("command").value);
}

function analysisQuery() {
  const query = new URLSearchParams();
  for (const [name, value] of new FormData(form)) {
    if (ANALYSED.has(name) || name.startsWith("var.")) query.append(name, value);
  }
  return query;
}

// #analysis-summary is a polite live region: rewriting the same words would have them read again at every pause
function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

function setHidden(element, text) {
  element.textContent = text || "";
  element.hidden = !text;
}

function markedCharacters(characters) {
  const holder = $("analysis-characters");
  holder.replaceChildren();
  if (!characters.length) {
    holder.hidden = true;
    return;
  }
  holder.append(document.createTextNode("Forces UCS-2: "));
  for (const character of characters) {
    const mark = document.createElement("mark");
    mark.className = "forces-ucs2";
    mark.textContent = character;
    holder.append(mark, document.createTextNode(" "));
  }
  holder.hidden = false;
}

function preview(text, characters) {
  const holder = $("analysis-preview");
  const forcing = new Set(characters);
  const parts = [];
  let plain = "";
  for (const character of text ?? "") {
    // for...of walks code points, as the API lists them (a character outside the BMP is one, not two)
    if (forcing.has(character)) {
      if (plain) parts.push(document.createTextNode(plain));
      plain = "";
      const mark = document.createElement("mark");
      mark.className = "forces-ucs2";
      mark.textContent = character;
      parts.push(mark);
    } else {
      plain += character;
    }
  }
  if (plain) parts.push(document.createTextNode(plain));
  holder.replaceChildren(...parts);
}

export function show(result) {
  const known = result.length !== null && result.length !== undefined && result.limit;
  setText($("analysis-encoding"), result.label ?? "—");
  setText(
    $("analysis-fit"),
    result.worst_case
      ? "worst case fits one SMS"
      : result.fits === true
        ? "fits one SMS"
        : result.fits === false
          ? "does not fit one SMS"
          : "",
  );
  const meter = $("analysis-meter");
  const limit = known ? result.limit : 1;
  meter.max = limit;
  meter.high = Math.floor(limit * 0.9);
  meter.value = known ? Math.min(result.length, limit) : 0;
  meter.textContent = known ? `${result.length} / ${result.limit}` : "—";
  const length = $("analysis-length");
  length.textContent = known ? `${result.length} / ${result.limit}` : "—";
  length.classList.toggle("over", result.fits === false);
  $("analysis-unit").textContent = result.unit ?? "";
  setHidden($("analysis-error"), result.error);
  setHidden($("analysis-note"), result.note);
  const characters = result.unicode_characters ?? [];
  markedCharacters(characters);
  preview(result.preview, characters);
}

let timer = null;
let inFlight = null;
let asked = 0;

async function analyse() {
  const ticket = ++asked;
  inFlight?.abort();
  inFlight = new AbortController();
  try {
    const response = await fetch(`${form.dataset.analysis}?${analysisQuery()}`, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
      cache: "no-store",
      signal: inFlight.signal,
    });
    const result = await response.json();
    if (ticket !== asked) return; // a later keystroke has asked since
    if (!response.ok) {
      setHidden($("analysis-error"), `Analysis unavailable: ${result.error ?? response.status}`);
      return;
    }
    show(result);
  } catch (error) {
    if (error.name === "AbortError" || ticket !== asked) return;
    setHidden($("analysis-error"), `Analysis unavailable: the console is not answering (${error.message}).`);
  }
}

function soon() {
  clearTimeout(timer);
  timer = setTimeout(analyse, DEBOUNCE_MS);
}

async function loadVariables() {
  clearTimeout(timer);
  const name = $("command").value;
  const holder = $("command-variables");
  if (!name) {
    holder.replaceChildren();
  } else {
    const url = `${form.dataset.variables}?${new URLSearchParams({ command: name })}`;
    const response = await fetch(url, { headers: { [FRAGMENT_HEADER]: "1" }, credentials: "same-origin", cache: "no-store" });
    // the fragment is rendered (and escaped) by the console's templates, from the API's command definition
    if (response.ok) holder.innerHTML = await response.text();
  }
  showChosen();
  analyse();
}

if (form) {
  form.addEventListener("input", (event) => {
    const name = event.target.name ?? "";
    if (name === "command") return; // its change loads the command's variables first, then analyses
    if (ANALYSED.has(name) || name.startsWith("var.")) soon();
  });
  form.addEventListener("change", (event) => {
    const name = event.target.name ?? "";
    if (name === "command") {
      loadVariables();
      return;
    }
    if (name === "target" || name === "content") showChosen();
    if (ANALYSED.has(name)) soon();
  });
  showChosen();
}
