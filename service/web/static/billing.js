// Billing page: prior-authorization worklist and one request's detail, over /api/v1/coverage.
// Plain browser JavaScript, no build step, no third-party code.
//
// Rules kept throughout:
//   * every HTTP call goes through api() (one place to add the Authorization header);
//   * data is only ever put on the page as text (textContent / text nodes via el()), never as
//     HTML; links are restricted to same-origin paths by safeHref().
"use strict";

(function () {
  const root = document.getElementById("billing-app");
  const API = root.dataset.api || "/api/v1/coverage";
  const PACKETS = root.dataset.packets === "true";

  const STATES = ["needs-auth", "pended", "expiring", "denied", "partial", "approved"];
  const STATE_LABEL = {
    "needs-auth": "Needs auth", pended: "Pended", expiring: "Expiring", denied: "Denied",
    partial: "Partial", approved: "Approved",
  };
  const SERVICE_LABEL = {
    "iv-ketamine-series": "IV ketamine series",
    "esketamine-course": "Esketamine (SPRAVATO) course",
    maintenance: "Maintenance",
  };
  const COURSE_SERVICE = { "iv-series": "iv-ketamine-series", "esketamine-course": "esketamine-course" };
  const CRITERION_LABEL = { met: "Met", missing: "Missing", "not-applicable": "N/A" };
  const PRECHECK_LABEL = { ready: "Ready to submit", incomplete: "Incomplete", "not-covered": "Not covered" };

  // ------------------------------------------------------------------ HTTP (the only place)

  // Authorization: a token given in the URL fragment (#access_token=...; kept in sessionStorage for
  // this tab, never in the URL or in logs), one set by window.billing.setAuthorization(), or, when
  // the service runs in dev mode, a short-lived billing token from /billing/dev-token (loopback only).
  const auth = { header: null, fromDev: false };
  const TOKEN_KEY = "billing.accessToken";

  function tokenFromFragment() {
    const fragment = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    const token = fragment.get("access_token");
    if (!token) return null;
    fragment.delete("access_token");
    const url = new URL(window.location.href);
    url.hash = fragment.toString();
    window.history.replaceState(null, "", url);
    return token;
  }

  /** The one network call of the page. */
  function send(url, init) { return fetch(url, init); }

  async function ensureToken(force) {
    if (auth.header && !force) return;
    const given = tokenFromFragment() || (force ? null : window.sessionStorage.getItem(TOKEN_KEY));
    if (given) {
      window.sessionStorage.setItem(TOKEN_KEY, given);
      auth.header = `Bearer ${given}`;
      auth.fromDev = false;
      return;
    }
    const url = new URL("/billing/dev-token", window.location.origin);
    url.searchParams.set("clinic_id", model.clinicId || "");
    const response = await send(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
    if (response.ok) {
      const data = await response.json();
      auth.header = `Bearer ${data.access_token}`;
      auth.fromDev = true;
    }
  }

  /** Call the service. `query` values that are null/undefined/"" are left out; `body` is sent as
   * JSON. Resolves to parsed JSON (or text); rejects with an Error carrying `status` and the
   * problem document's detail. */
  async function api(method, path, options) {
    const { query, body, blob } = options || {};
    await ensureToken(false);
    const url = new URL(path, window.location.origin);
    for (const [key, value] of Object.entries(query || {})) {
      if (value !== null && value !== undefined && value !== "") url.searchParams.set(key, String(value));
    }
    const headers = { Accept: "application/json, application/problem+json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (auth.header) headers.Authorization = auth.header;
    let response = await send(url, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401 && auth.fromDev && !(options || {}).retried) {
      await ensureToken(true);  // the dev token expired or the clinic changed: get a fresh one, once
      return api(method, path, { ...(options || {}), retried: true });
    }
    const type = response.headers.get("content-type") || "";
    const data = response.ok && blob ? await response.blob()
      : type.includes("json") ? await response.json().catch(() => null) : await response.text();
    if (!response.ok) {
      const detail = data && typeof data === "object" ? (data.detail || data.title) : null;
      const error = new Error(`${method} ${url.pathname}: ${response.status} ${detail || response.statusText}`);
      error.status = response.status;
      error.problem = data;
      throw error;
    }
    return data;
  }

  // Hook for the auth work to come: window.billing.setAuthorization("Bearer ...").
  window.billing = {
    setAuthorization(value) { auth.header = value || null; auth.fromDev = false; },
    authorization: () => auth.header,
    reload: () => loadWorklist(),
  };

  // ------------------------------------------------------------------ DOM helpers (text only)

  /** Create an element. attrs: class, text, on<event>, dataset, or plain attributes. Children
   * are nodes or strings (strings become text nodes, never markup). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = String(value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /** Only same-origin absolute paths ("/api/...") become links; anything else is dropped. */
  function safeHref(path) {
    return typeof path === "string" && path.startsWith("/") && !path.startsWith("//") && !path.includes("\\") ? path : null;
  }

  function withQuery(path, query) {
    const href = safeHref(path);
    if (!href) return null;
    const url = new URL(href, window.location.origin);
    for (const [key, value] of Object.entries(query)) if (!url.searchParams.has(key)) url.searchParams.set(key, value);
    return url.pathname + url.search;
  }

  const $ = (id) => document.getElementById(id);
  const clear = (node) => { node.replaceChildren(); return node; };
  const label = (map, key) => map[key] || key || "—";
  const dateText = (iso) => (iso ? String(iso).slice(0, 10) : "—");

  function badge(state) {
    return el("span", { class: `badge badge-${String(state).replace(/[^a-z-]/g, "")}`, text: label(STATE_LABEL, state) });
  }

  // ------------------------------------------------------------------ page state

  const params = new URLSearchParams(window.location.search);
  const model = {
    clinicId: params.get("clinic_id") || "",
    filter: STATES.includes(params.get("state")) ? params.get("state") : "all",
    rows: [],
    selectedKey: null,
    detailToken: 0,
  };

  function setPageStatus(text) { $("page-status").textContent = text || ""; }
  function setPageError(text) {
    const box = $("page-error");
    box.textContent = text || "";
    box.hidden = !text;
  }
  function setDetailStatus(text, isError) {
    const box = $("detail-status");
    box.textContent = text || "";
    box.classList.toggle("error", Boolean(isError));
  }

  function rowKey(row) { return row.id ? `request:${row.id}` : `patient:${row.patient_id}`; }

  // ------------------------------------------------------------------ worklist

  async function listAll(kind) {
    // Domain record lists (names, coverages, enrollments); one page of 500 is plenty for a clinic's
    // open work. A missing list is not fatal: the worklist still shows the requests.
    try {
      const page = await api("GET", `/api/v1/${kind}`, { query: { clinic_id: model.clinicId, limit: 500 } });
      return (page && page.items ? page.items : []).map((item) => item.record);
    } catch (error) {
      return [];
    }
  }

  function patientName(record) {
    if (!record) return null;
    const given = Array.isArray(record.given_names) ? record.given_names.join(" ") : "";
    return [given, record.family_name].filter(Boolean).join(" ") || null;
  }

  async function loadWorklist() {
    if (!model.clinicId) {
      setPageStatus("Enter a clinic to load its worklist.");
      renderWorklist();
      return;
    }
    setPageError("");
    setPageStatus("Loading worklist…");
    root.setAttribute("aria-busy", "true");
    try {
      const [worklist, patients, coverages, enrollments] = await Promise.all([
        api("GET", `${API}/prior-auth`, { query: { clinic_id: model.clinicId } }),
        listAll("patients"), listAll("coverages"), listAll("enrollments"),
      ]);
      const names = new Map(patients.map((p) => [p.id, patientName(p)]));
      const rows = worklist.items.map((item) => ({
        id: item.id, patient_id: item.patient_id, name: names.get(item.patient_id) || null,
        service: item.service, payer: item.payer, state: item.worklist_state, status: item.status,
        period: item.period || {}, warnings: item.warnings || [], preauth_ref: item.preauth_ref,
        certification_type: item.certification_type, links: item.links || {},
      }));
      // Patients with an active coverage and no request yet need one: show them as needs-auth.
      const withRequest = new Set(rows.map((r) => r.patient_id));
      const latestCoverage = new Map();
      for (const coverage of coverages) {
        if (coverage.status && coverage.status !== "active") continue;
        const seen = latestCoverage.get(coverage.patient_id);
        if (!seen || String(coverage.period_start) > String(seen.period_start)) latestCoverage.set(coverage.patient_id, coverage);
      }
      const courseOf = new Map();
      for (const enrollment of enrollments) {
        const seen = courseOf.get(enrollment.patient_id);
        if (!seen || String(enrollment.start_date) > String(seen.start_date)) courseOf.set(enrollment.patient_id, enrollment);
      }
      for (const [patientId, coverage] of latestCoverage) {
        if (withRequest.has(patientId)) continue;
        const course = courseOf.get(patientId);
        rows.push({
          id: null, patient_id: patientId, name: names.get(patientId) || null, coverage_id: coverage.id,
          service: (course && COURSE_SERVICE[course.course_type]) || "iv-ketamine-series", payer: coverage.payer,
          state: "needs-auth", status: "none", period: {}, warnings: [], links: {},
        });
      }
      await Promise.all([addUsage(rows), addDenialReasons(rows)]);
      model.rows = rows;
      renderWorklist();
      setPageStatus(`${rows.length} item${rows.length === 1 ? "" : "s"} for clinic ${model.clinicId}.`);
    } catch (error) {
      model.rows = [];
      renderWorklist();
      setPageStatus("");
      setPageError(`Could not load the worklist: ${error.message}`);
    } finally {
      root.removeAttribute("aria-busy");
    }
  }

  async function addUsage(rows) {
    const patients = new Set(rows.filter((r) => ["approved", "expiring", "partial"].includes(r.state)).map((r) => r.patient_id));
    await Promise.all([...patients].map(async (patientId) => {
      try {
        const usage = await api("GET", `${API}/authorizations`, { query: { clinic_id: model.clinicId, patient_id: patientId } });
        for (const auth of usage.authorizations || []) {
          const row = rows.find((r) => r.id === auth.request_id);
          if (row) row.usage = auth;
        }
      } catch (error) { /* units stay unknown */ }
    }));
  }

  async function addDenialReasons(rows) {
    await Promise.all(rows.filter((r) => r.id && ["denied", "partial"].includes(r.state)).map(async (row) => {
      try {
        const request = await api("GET", `${API}/prior-auth/${encodeURIComponent(row.id)}`);
        row.reasons = reasonsOf(request.decision);
      } catch (error) { /* reasons stay unknown */ }
    }));
  }

  function reasonsOf(decision) {
    if (!decision) return [];
    const reasons = [];
    for (const item of decision.items || []) {
      if (item.decision === "approved") continue;
      for (const reason of item.reasons || []) if (!reasons.includes(reason)) reasons.push(reason);
    }
    for (const error of decision.errors || []) if (!reasons.includes(error)) reasons.push(error);
    return reasons;
  }

  function counts() {
    const out = { all: model.rows.length };
    for (const state of STATES) out[state] = model.rows.filter((r) => r.state === state).length;
    return out;
  }

  function renderFilter() {
    const fieldset = $("state-filter");
    const legend = fieldset.querySelector("legend");
    fieldset.replaceChildren(legend);
    const n = counts();
    for (const value of ["all", ...STATES]) {
      const id = `filter-${value}`;
      const input = el("input", {
        type: "radio", name: "state", id, value, checked: model.filter === value,
        onchange: () => { model.filter = value; renderWorklist(); },
      });
      fieldset.append(el("span", { class: "filter-option" }, input,
        el("label", { for: id }, value === "all" ? "All" : STATE_LABEL[value], " ", el("span", { class: "count", text: `(${n[value]})` }))));
    }
  }

  function usageText(row) {
    const sessions = row.usage && row.usage.sessions;
    if (!sessions) return "—";
    return `${sessions.used} used / ${sessions.left} left (of ${sessions.authorized})`;
  }

  function renderWorklist() {
    renderFilter();
    const table = $("worklist-table");
    for (const body of table.querySelectorAll("tbody")) body.remove();
    const states = model.filter === "all" ? STATES : [model.filter];
    let shown = 0;
    for (const state of states) {
      const rows = model.rows.filter((r) => r.state === state);
      if (!rows.length) continue;
      shown += rows.length;
      const body = el("tbody", { dataset: { group: state } },
        el("tr", { class: "group-row" },
          el("th", { scope: "rowgroup", colspan: 8 }, badge(state), " ", `${rows.length} item${rows.length === 1 ? "" : "s"}`)));
      rows.sort((a, b) => String(a.name || a.patient_id).localeCompare(String(b.name || b.patient_id)));
      for (const row of rows) body.append(worklistRow(row));
      table.append(body);
    }
    $("worklist-empty").hidden = shown > 0 || !model.clinicId;
  }

  function worklistRow(row) {
    const key = rowKey(row);
    const who = row.name ? `${row.name} (${row.patient_id})` : row.patient_id;
    const stateCell = el("td", {}, badge(row.state));
    if (row.reasons && row.reasons.length) {
      stateCell.append(el("ul", { class: "reasons" }, row.reasons.map((r) => el("li", { text: r }))));
    } else if (!row.id) {
      stateCell.append(el("div", { class: "muted small", text: "no request yet" }));
    }
    const warnings = row.warnings.length
      ? el("ul", { class: "warnings" }, row.warnings.map((w) => el("li", { text: w.message || w.kind || "" })))
      : "—";
    return el("tr", {
      dataset: { key, state: row.state, patient: row.patient_id, requestId: row.id || "" },
      class: model.selectedKey === key ? "selected" : null,
      "aria-current": model.selectedKey === key ? "true" : null,
    },
    el("td", {}, who),
    el("td", { text: label(SERVICE_LABEL, row.service) }),
    el("td", { text: row.payer || "—" }),
    stateCell,
    el("td", { class: "nowrap", text: usageText(row) }),
    el("td", { class: "nowrap", text: dateText(row.period && row.period.end) }),
    el("td", {}, warnings),
    el("td", {}, el("button", {
      type: "button", class: "open", "aria-label": `Open ${who}, ${label(SERVICE_LABEL, row.service)}`,
      onclick: () => select(key),
    }, "Open")));
  }

  // ------------------------------------------------------------------ detail

  function selectedRow() { return model.rows.find((r) => rowKey(r) === model.selectedKey) || null; }

  async function select(key, options) {
    model.selectedKey = key;
    renderWorklist();
    const row = selectedRow();
    const section = $("detail");
    if (!row) { section.hidden = true; return; }
    section.hidden = false;
    if (!(options && options.keepStatus)) setDetailStatus("");
    if (!(options && options.keepPacket)) { $("packet").hidden = true; clear($("packet-body")); }
    await loadDetail(row);
    if (!(options && options.noFocus)) $("detail-title").focus();
  }

  async function loadDetail(row) {
    const token = ++model.detailToken;
    const who = row.name ? `${row.name} (${row.patient_id})` : row.patient_id;
    $("detail-title").textContent = who;
    $("detail-title").setAttribute("tabindex", "-1");
    $("service-choice").hidden = Boolean(row.id);
    if (!row.id) $("service-select").value = row.service;
    clear($("precheck-body")).append(el("p", { class: "muted", text: "Loading…" }));
    $("decision").hidden = true;
    $("usage").hidden = true;
    renderFacts(row, null);
    renderActions(row, null);

    let request = null;
    try {
      if (row.id) request = await api("GET", `${API}/prior-auth/${encodeURIComponent(row.id)}`);
    } catch (error) {
      if (token === model.detailToken) setDetailStatus(`Could not load the request: ${error.message}`, true);
    }
    if (token !== model.detailToken) return;
    renderFacts(row, request);
    renderActions(row, request);
    renderDecision(request);
    renderUsage(row);
    await loadPrecheck(row, request, token);
  }

  function renderFacts(row, request) {
    const facts = clear($("detail-facts"));
    const add = (term, value) => facts.append(el("dt", { text: term }), el("dd", {}, value));
    add("State", badge(row.state));
    add("Service", label(SERVICE_LABEL, request ? request.service : row.service));
    add("Payer", row.payer || "—");
    add("Coverage", (request && request.coverage_id) || row.coverage_id || "latest active");
    if (row.id) {
      add("Request", el("code", { text: row.id }));
      add("Certification", (request ? request.certification_type : row.certification_type) === "R" ? "Renewal (R)" : "Initial (I)");
    }
  }

  function currentService(row) { return row.id ? row.service : $("service-select").value; }

  function renderActions(row, request) {
    const status = request ? request.status : row.status;
    const canSubmit = !row.id || ["draft", "error"].includes(status);
    $("action-submit").disabled = !canSubmit;
    $("action-submit").title = canSubmit ? "" : "Already sent to the payer";
    $("action-inquire").disabled = !row.id || !["submitted", "pended", "approved", "partial", "denied"].includes(status);
    const warned = row.state === "expiring" || (row.usage && row.usage.needs_renewal) || row.warnings.length > 0;
    $("action-renew").hidden = !(row.id && warned);
    $("action-renew").disabled = false;
    $("action-packet").hidden = !PACKETS;
    $("action-packet").disabled = false;
    const bundle = $("action-bundle");
    const href = row.id ? safeHref(`${API}/prior-auth/${encodeURIComponent(row.id)}/bundle`) : null;
    bundle.hidden = !href;
    if (href) bundle.setAttribute("href", href); else bundle.removeAttribute("href");
  }

  function renderDecision(request) {
    const body = clear($("decision-body"));
    if (!request || !request.decision) { $("decision").hidden = true; return; }
    $("decision").hidden = false;
    const decision = request.decision;
    const facts = el("dl", { class: "facts" });
    const add = (term, value) => facts.append(el("dt", { text: term }), el("dd", {}, value));
    add("Outcome", badge(request.status === "submitted" ? "pended" : request.status));
    add("preAuthRef", request.preauth_ref ? el("code", { class: "preauth", text: request.preauth_ref }) : "—");
    const period = request.period || decision.period || {};
    add("Period", period.start || period.end ? `${dateText(period.start)} – ${dateText(period.end)}` : "—");
    body.append(facts);

    const items = decision.items || [];
    if (items.length) {
      const table = el("table", { class: "items" },
        el("caption", { text: "Items" }),
        el("thead", {}, el("tr", {}, ["Code", "Decision", "Authorized units", "Reasons"].map((h) => el("th", { scope: "col", text: h })))),
        el("tbody", {}, items.map((item) => el("tr", { dataset: { code: item.code } },
          el("th", { scope: "row" }, el("code", { text: item.code })),
          el("td", { text: item.decision || item.review_action || "—" }),
          el("td", { text: item.authorized_units === null || item.authorized_units === undefined ? "—" : String(item.authorized_units) }),
          el("td", {}, (item.reasons || []).length
            ? el("ul", { class: item.decision === "approved" ? "notes" : "reasons" }, item.reasons.map((r) => el("li", { text: r })))
            : "—")))));
      body.append(table);
    }
    const notes = [...(decision.notes || []), ...(decision.errors || [])];
    if (notes.length) body.append(el("ul", { class: "notes" }, notes.map((n) => el("li", { text: n }))));
  }

  function renderUsage(row) {
    const body = clear($("usage-body"));
    const usage = row.usage;
    if (!usage) { $("usage").hidden = true; return; }
    $("usage").hidden = false;
    const s = usage.sessions || {};
    body.append(el("p", { class: "usage-line", text: `Sessions: ${s.used} used, ${s.left} left of ${s.authorized} authorized` }));
    if ((usage.codes || []).length) {
      body.append(el("table", { class: "items" },
        el("thead", {}, el("tr", {}, ["Code", "Authorized", "Used", "Left"].map((h) => el("th", { scope: "col", text: h })))),
        el("tbody", {}, usage.codes.map((c) => el("tr", {},
          el("th", { scope: "row" }, el("code", { text: c.code })),
          el("td", { text: String(c.authorized_units) }), el("td", { text: String(c.used_units) }), el("td", { text: String(c.left_units) }))))));
    }
    if ((usage.warnings || []).length) {
      body.append(el("ul", { class: "warnings" }, usage.warnings.map((w) => el("li", { text: w.message || w.kind }))));
    }
  }

  async function loadPrecheck(row, request, token) {
    const body = $("precheck-body");
    try {
      const check = await api("GET", `${API}/precheck`, {
        query: {
          clinic_id: model.clinicId, patient_id: row.patient_id, service: currentService(row),
          coverage_id: (request && request.coverage_id) || row.coverage_id,
        },
      });
      if (token !== model.detailToken) return;
      renderPrecheck(check);
    } catch (error) {
      if (token !== model.detailToken) return;
      clear(body).append(el("p", { class: "error", text: `Pre-check unavailable: ${error.message}` }));
    }
  }

  function renderPrecheck(check) {
    const body = clear($("precheck-body"));
    const summary = el("p", { class: `precheck-summary precheck-${String(check.status).replace(/[^a-z-]/g, "")}` },
      el("strong", { text: label(PRECHECK_LABEL, check.status) }),
      ` · ${check.payer_name || check.payer} · as of ${dateText(check.as_of)}`);
    body.append(summary);
    if (check.not_covered_reason) body.append(el("p", { class: "error", text: check.not_covered_reason }));
    const list = el("ul", { class: "criteria", "aria-label": "Payer criteria" });
    for (const c of check.criteria || []) {
      const links = (c.links || []).flatMap((link) => {
        const out = [];
        const api = withQuery(link.api, { clinic_id: model.clinicId });
        if (api) {
          out.push(el("a", { href: api, target: "_blank", rel: "noopener", title: `${link.kind} record ${link.key}`, text: link.key || link.api }));
        }
        // FHIR resources of the record (Provenance left out: it is the audit trail, not evidence)
        for (const ref of link.fhir || []) {
          if (!/^[A-Za-z]+\/[A-Za-z0-9\-.]+$/.test(ref) || ref.startsWith("Provenance/")) continue;
          const href = safeHref(`/fhir/${ref}`);
          if (href) out.push(el("a", { href, target: "_blank", rel: "noopener", class: "fhir", title: ref, "aria-label": `FHIR ${ref}`, text: ref.split("/")[0] }));
        }
        return out;
      });
      list.append(el("li", { class: `criterion criterion-${String(c.status).replace(/[^a-z-]/g, "")}`, dataset: { key: c.key, status: c.status } },
        el("span", { class: "criterion-status", text: label(CRITERION_LABEL, c.status) }),
        el("div", { class: "criterion-text" },
          el("div", { class: "criterion-title", text: c.title || c.key }),
          c.evidence ? el("div", { class: "evidence", text: c.evidence }) : null,
          c.rule ? el("div", { class: "rule muted small", text: `Rule: ${c.rule}` }) : null,
          links.length ? el("div", { class: "links" }, links.map((a, i) => [i ? " · " : "", a])) : null)));
    }
    body.append(list);
  }

  // ------------------------------------------------------------------ actions

  async function act(button, message, work) {
    const buttons = document.querySelectorAll("#detail .actions button");
    buttons.forEach((b) => { b.dataset.wasDisabled = b.disabled ? "1" : ""; b.disabled = true; });
    $("detail").setAttribute("aria-busy", "true");
    setDetailStatus(message);
    let rendered = false;
    try {
      rendered = (await work()) === true;  // true: the actions were re-rendered for the new state
    } catch (error) {
      setDetailStatus(error.message, true);
    } finally {
      if (!rendered) buttons.forEach((b) => { b.disabled = b.dataset.wasDisabled === "1"; });
      $("detail").removeAttribute("aria-busy");
    }
  }

  async function refreshAndSelect(requestId, status, extra) {
    await loadWorklist();
    const key = requestId ? `request:${requestId}` : model.selectedKey;
    if (model.rows.some((r) => rowKey(r) === key)) {
      if (model.filter !== "all" && selectedState(key) !== model.filter) { model.filter = "all"; }
      setDetailStatus(status);
      await select(key, { keepStatus: true, noFocus: true, ...(extra || {}) });
    } else {
      $("detail").hidden = true;
    }
    return true;
  }

  function selectedState(key) { const r = model.rows.find((x) => rowKey(x) === key); return r ? r.state : null; }

  function outcomeText(result) {
    const last = result.last_exchange || {};
    if (last.error) return `Payer exchange failed: ${last.error}`;
    const state = result.status === "submitted" ? "pended" : result.status;
    let text = `Payer answered: ${label(STATE_LABEL, state)}.`;
    if (result.preauth_ref) text += ` preAuthRef ${result.preauth_ref}.`;
    return text;
  }

  async function onSubmit() {
    const row = selectedRow();
    if (!row) return;
    await act($("action-submit"), "Submitting to the payer…", async () => {
      let id = row.id;
      if (!id) {
        const created = await api("POST", `${API}/prior-auth`, {
          body: { clinic_id: model.clinicId, patient_id: row.patient_id, service: currentService(row), coverage_id: row.coverage_id || null },
        });
        id = created.id;
      }
      const result = await api("POST", `${API}/prior-auth/${encodeURIComponent(id)}/submit`);
      return refreshAndSelect(id, outcomeText(result));
    });
  }

  async function onInquire() {
    const row = selectedRow();
    if (!row || !row.id) return;
    await act($("action-inquire"), "Asking the payer for the status…", async () => {
      const result = await api("POST", `${API}/prior-auth/${encodeURIComponent(row.id)}/inquire`);
      return refreshAndSelect(row.id, outcomeText(result));
    });
  }

  async function onRenew() {
    const row = selectedRow();
    if (!row || !row.id) return;
    await act($("action-renew"), "Creating the renewal request…", async () => {
      const created = await api("POST", `${API}/prior-auth/${encodeURIComponent(row.id)}/renew`, { body: {} });
      return refreshAndSelect(created.id, "Renewal drafted (certification type R). Review the pre-check, then submit it.");
    });
  }

  async function onPacket() {
    const row = selectedRow();
    if (!row) return;
    await act($("action-packet"), "Building the medical-necessity packet…", async () => {
      const packet = await api("POST", `${API}/packets`, { query: { clinic_id: model.clinicId, patient_id: row.patient_id } });
      const pdfApi = withQuery(packet.pdf, { clinic_id: model.clinicId });
      // the PDF needs the Authorization header, so it is fetched here and shown from a blob: URL
      const pdf = pdfApi ? URL.createObjectURL(await api("GET", pdfApi, { blob: true })) : null;
      const body = clear($("packet-body"));
      const pages = packet.pages ? `, ${packet.pages} page${packet.pages === 1 ? "" : "s"}` : "";
      body.append(el("p", {},
        pdf ? el("a", { href: pdf, target: "_blank", rel: "noopener", id: "packet-link", dataset: { api: pdfApi }, text: `Open ${packet.title || "packet"} (PDF${pages})` }) : "PDF unavailable",
        packet.generated_on ? ` · generated ${dateText(packet.generated_on)}` : ""));
      if (pdf) body.append(el("iframe", { src: pdf, title: "Medical-necessity packet preview", class: "packet-frame" }));
      $("packet").hidden = false;
      setDetailStatus(`Packet ${packet.status === "unchanged" ? "unchanged since it was last built" : "built"}.`);
      return false;
    });
  }

  // ------------------------------------------------------------------ wiring

  function init() {
    $("clinic-id").value = model.clinicId;
    $("clinic-form").addEventListener("submit", (event) => {
      event.preventDefault();
      model.clinicId = $("clinic-id").value.trim();
      if (auth.fromDev) auth.header = null;  // a dev token is per clinic
      const url = new URL(window.location.href);
      url.searchParams.set("clinic_id", model.clinicId);
      window.history.replaceState(null, "", url);
      model.selectedKey = null;
      $("detail").hidden = true;
      loadWorklist();
    });
    $("refresh").addEventListener("click", () => {
      const key = model.selectedKey;
      loadWorklist().then(() => { if (key && model.rows.some((r) => rowKey(r) === key)) select(key, { noFocus: true }); });
    });
    $("detail-close").addEventListener("click", () => { model.selectedKey = null; $("detail").hidden = true; renderWorklist(); });
    $("service-select").addEventListener("change", () => {
      const row = selectedRow();
      if (row && !row.id) { row.service = $("service-select").value; renderWorklist(); loadPrecheck(row, null, model.detailToken); }
    });
    $("action-submit").addEventListener("click", onSubmit);
    $("action-inquire").addEventListener("click", onInquire);
    $("action-renew").addEventListener("click", onRenew);
    $("action-packet").addEventListener("click", onPacket);
    loadWorklist();
  }

  init();
})();
