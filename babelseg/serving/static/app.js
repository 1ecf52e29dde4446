// The babelseg serve page: upload or drop an image, type a vocabulary or pick a dataset's,
// see the overlay and its legend, hover for the top labels, click a class for its heat map.
// Everything the user or the server supplies is inserted as text (never as HTML).
"use strict";

const $ = (id) => document.getElementById(id);
const state = { info: null, file: null, photoUrl: null, result: null, heatClass: null,
  hoverBusy: false, hoverNext: null, inside: false };

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
  document.body.dataset.state = isError ? "error" : document.body.dataset.state;
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
    return JSON.stringify(body.detail);
  } catch (e) {
    return `${response.status} ${response.statusText}`;
  }
}

function formatBytes(n) {
  return n >= 1048576 ? `${(n / 1048576).toFixed(1)} MB` : `${Math.round(n / 1024)} kB`;
}

async function loadInfo() {
  const response = await fetch("/api/info");
  if (!response.ok) { setStatus(await errorText(response), true); return; }
  const info = await response.json();
  state.info = info;
  $("model-info").textContent =
    `model ${info.model} · recipe ${info.recipe} · text encoder ${info.text_encoder}`;
  const select = $("dataset");
  for (const [name, ds] of Object.entries(info.datasets)) {
    const option = document.createElement("option");
    option.value = name;
    option.textContent = `${name} (${ds.classes.length} classes${ds.heldout ? ", held out" : ""})`;
    select.appendChild(option);
  }
  if (info.unified) {
    const option = document.createElement("option");
    option.value = "unified";
    option.textContent = "unified (learned label space)";
    select.appendChild(option);
  }
  const first = Object.values(info.datasets)[0];
  if (first && !$("labels").value) $("labels").value = first.classes.slice(0, 8).join(", ");
  const l = info.limits;
  $("limits").textContent = `Limits: ${formatBytes(l.max_upload_bytes)} per image, ` +
    `${(l.max_pixels / 1e6).toFixed(1)} megapixels, ${l.max_labels} labels.`;
  document.body.dataset.state = "ready";
  updateButton();
}

function onDatasetChange() {
  const name = $("dataset").value;
  const labels = $("labels");
  labels.disabled = name !== "";
  if (name && state.info.datasets[name]) {
    labels.value = state.info.datasets[name].classes.join("\n");
    $("vocab-note").textContent = `${name}'s own vocabulary (stored text embeddings).`;
  } else if (name === "unified") {
    labels.value = "";
    $("vocab-note").textContent = "The run's learned unified label space.";
  } else {
    $("vocab-note").textContent = "Any labels: comma-separated, or one per line.";
  }
}

function updateButton() {
  $("segment").disabled = !(state.file && state.info);
}

function chooseFile(file) {
  if (!file) return;
  state.file = file;
  if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
  state.photoUrl = URL.createObjectURL(file);
  $("drop-text").textContent = `${file.name} (${formatBytes(file.size)})`;
  const limit = state.info ? state.info.limits.max_upload_bytes : Infinity;
  if (file.size > limit) {
    setStatus(`${file.name} is ${formatBytes(file.size)}; the server takes up to ` +
      `${formatBytes(limit)}.`, true);
  } else {
    setStatus("Ready: press Segment.");
  }
  updateButton();
}

async function segment() {
  const form = new FormData();
  form.append("image", state.file, state.file.name);
  const dataset = $("dataset").value;
  if (dataset) form.append("dataset", dataset);
  else form.append("labels", $("labels").value);
  form.append("alpha", "1");
  $("segment").disabled = true;
  document.body.dataset.state = "busy";
  setStatus("Segmenting…");
  try {
    const response = await fetch("/api/predict", { method: "POST", body: form });
    if (!response.ok) { setStatus(await errorText(response), true); return; }
    showResult(await response.json());
  } catch (e) {
    setStatus(`The request failed: ${e}`, true);
  } finally {
    updateButton();
  }
}

function showResult(result) {
  state.result = result;
  state.heatClass = null;
  $("photo").src = state.photoUrl;
  $("overlay").src = result.overlay;
  $("overlay").hidden = false;
  $("heatmap").hidden = true;
  $("colorbar").hidden = true;
  $("show-overlay").classList.add("active");
  $("view-title").textContent = `${result.width}×${result.height}, ` +
    `${result.vocabulary.length} labels`;
  applyAlpha();
  const legend = $("legend");
  legend.replaceChildren();
  for (const entry of result.legend) {
    const item = document.createElement("li");
    item.dataset.index = entry.index;
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.background = `rgb(${result.vocabulary[entry.index].color.join(",")})`;
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = entry.name;
    name.title = entry.name;
    const percent = document.createElement("span");
    percent.className = "percent";
    percent.textContent = entry.percent < 0.1 ? "<0.1%" : `${entry.percent.toFixed(1)}%`;
    item.append(swatch, name, percent);
    item.addEventListener("click", () => showHeatMap(entry.index));
    legend.appendChild(item);
  }
  $("result").hidden = false;
  $("legend-panel").hidden = false;
  fitStage();
  document.body.dataset.state = "done";
  setStatus(result.id ? "Done. Hover the image for the top labels under the pointer." :
    "Done (too large to keep for hover and heat maps).");
}

function fitStage() {
  // Scale the image (up or down) to the result panel's width and 75 % of the window's height.
  if (!state.result) return;
  const panel = $("result");
  const style = getComputedStyle(panel);
  const room = panel.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  const scale = Math.min(room / state.result.width, 0.75 * window.innerHeight / state.result.height);
  for (const id of ["photo", "overlay", "heatmap"]) {
    $(id).style.imageRendering = scale > 1.5 ? "pixelated" : "auto";
  }
  $("photo").style.width = `${Math.max(1, Math.floor(state.result.width * scale))}px`;
}

function applyAlpha() {
  const alpha = $("alpha").value;
  $("alpha-value").textContent = Number(alpha).toFixed(2);
  $("overlay").style.opacity = alpha;
  $("heatmap").style.opacity = Math.max(Number(alpha), 0.6);
}

async function showHeatMap(index) {
  if (!state.result || !state.result.id) return;
  state.heatClass = index;
  const kind = $("heat-kind").value;
  const url = `/api/results/${state.result.id}/heatmap?class_index=${index}&kind=${kind}`;
  const response = await fetch(url);
  if (!response.ok) { setStatus(await errorText(response), true); return; }
  const heat = await response.json();
  $("heatmap").src = heat.image;
  $("heatmap").hidden = false;
  $("overlay").hidden = true;
  $("colorbar").hidden = false;
  $("colorbar-low").textContent = heat.low.toFixed(2);
  $("colorbar-high").textContent = heat.high.toFixed(2);
  $("show-overlay").classList.remove("active");
  $("view-title").textContent = `heat map: ${heat.name} (${heat.kind})`;
  for (const li of $("legend").children) {
    li.classList.toggle("active", Number(li.dataset.index) === index);
  }
  document.body.dataset.view = "heatmap";
}

function showOverlay() {
  state.heatClass = null;
  $("heatmap").hidden = true;
  $("colorbar").hidden = true;
  $("overlay").hidden = false;
  $("show-overlay").classList.add("active");
  for (const li of $("legend").children) li.classList.remove("active");
  if (state.result) {
    $("view-title").textContent = `${state.result.width}×${state.result.height}, ` +
      `${state.result.vocabulary.length} labels`;
  }
  document.body.dataset.view = "overlay";
}

function pixelUnder(event) {
  const box = $("photo").getBoundingClientRect();
  const x = Math.floor((event.clientX - box.left) * state.result.width / box.width);
  const y = Math.floor((event.clientY - box.top) * state.result.height / box.height);
  if (x < 0 || y < 0 || x >= state.result.width || y >= state.result.height) return null;
  return { x, y, left: event.clientX - box.left, top: event.clientY - box.top };
}

async function hover(point) {
  if (state.hoverBusy) { state.hoverNext = point; return; }
  state.hoverBusy = true;
  try {
    const url = `/api/results/${state.result.id}/pixel?x=${point.x}&y=${point.y}&top=5`;
    const response = await fetch(url);
    const data = response.ok ? await response.json() : null;
    if (data && state.inside) showTooltip(point, data);
  } finally {
    state.hoverBusy = false;
    if (state.hoverNext) { const next = state.hoverNext; state.hoverNext = null; hover(next); }
  }
}

function showTooltip(point, data) {
  const tip = $("tooltip");
  const table = document.createElement("table");
  const head = table.insertRow();
  for (const text of [`(${data.x}, ${data.y})`, "score", "p"]) {
    const cell = head.insertCell();
    cell.textContent = text;
  }
  for (const label of data.labels) {
    const row = table.insertRow();
    row.insertCell().textContent = label.name;
    const score = row.insertCell();
    score.className = "num";
    score.textContent = label.score.toFixed(2);
    const p = row.insertCell();
    p.className = "num";
    p.textContent = `${(100 * label.probability).toFixed(1)}%`;
  }
  tip.replaceChildren(table);
  tip.hidden = false;
  const stage = $("stage").getBoundingClientRect();
  const left = Math.min(point.left + 14, Math.max(0, stage.width - tip.offsetWidth));
  tip.style.left = `${left}px`;
  tip.style.top = `${point.top + 14}px`;
}

function wire() {
  $("file-input").addEventListener("change", (e) => chooseFile(e.target.files[0]));
  const zone = $("drop-zone");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("dragging"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("dragging");
    chooseFile(e.dataTransfer.files[0]);
  });
  $("dataset").addEventListener("change", onDatasetChange);
  $("segment").addEventListener("click", segment);
  $("alpha").addEventListener("input", applyAlpha);
  $("show-overlay").addEventListener("click", showOverlay);
  $("heat-kind").addEventListener("change", () => {
    if (state.heatClass !== null) showHeatMap(state.heatClass);
  });
  $("stage").addEventListener("mousemove", (e) => {
    if (!state.result || !state.result.id) return;
    state.inside = true;
    const point = pixelUnder(e);
    if (point) hover(point);
  });
  $("stage").addEventListener("mouseleave", () => {
    state.inside = false;
    state.hoverNext = null;
    $("tooltip").hidden = true;
  });
  window.addEventListener("resize", fitStage);
  onDatasetChange();
  loadInfo().catch((e) => setStatus(`Could not reach the server: ${e}`, true));
}

wire();
