// The chat page's only script (served as /ui/chat.js; the page allows no inline script).
// It streams answers from POST /ui/ask (Server-Sent Events over fetch), keeps the conversation
// for follow-ups, and opens a citation's source in the side panel. Text from the server is
// added as text; HTML only ever comes from the server's own (autoescaped) templates.
"use strict";
(() => {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? "";
  const picker = document.getElementById("collection");
  if (picker) picker.addEventListener("change", () => picker.form.submit());

  const panel = document.getElementById("source");
  document.addEventListener("click", async (event) => {
    const link = event.target.closest("a.cite, a.source-link");
    if (!link || !panel || event.ctrlKey || event.metaKey || event.shiftKey) return;
    event.preventDefault();
    const url = new URL(link.href);
    url.searchParams.set("partial", "1");
    url.hash = "";
    const response = await fetch(url, { credentials: "same-origin" });
    panel.innerHTML = await response.text(); // rendered and escaped by the server
    panel.hidden = false;
    panel.querySelector("mark")?.scrollIntoView({ block: "center" });
  });

  const form = document.getElementById("ask-form");
  if (!form) return;
  const input = document.getElementById("question");
  const button = document.getElementById("ask");
  const conversation = document.getElementById("conversation");
  let history = [];
  const MAX_TURNS = 40;

  document.getElementById("new-conversation").addEventListener("click", () => {
    history = [];
    conversation.replaceChildren();
    if (panel) panel.hidden = true;
    input.focus();
  });

  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  function parse(raw) {
    let name = "message";
    const data = [];
    for (const line of raw.split("\n")) {
      if (line.startsWith("event:")) name = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
    }
    return { name, data: data.length ? JSON.parse(data.join("\n")) : null };
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const question = input.value.trim();
    if (!question || button.disabled) return;
    input.value = "";
    const asked = document.createElement("div");
    asked.className = "turn user";
    asked.textContent = question;
    const out = document.createElement("div");
    out.className = "turn assistant streaming";
    out.dataset.deltas = "0";
    conversation.append(asked, out);
    button.disabled = true;
    try {
      const response = await fetch("/ui/ask", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: JSON.stringify({
          collection: form.dataset.collection,
          question,
          history: history.slice(-MAX_TURNS),
        }),
      });
      if (!response.ok) {
        const body = await response.json().catch(() => null);
        throw new Error(body?.error?.message ?? `${response.status} ${response.statusText}`);
      }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      let answered = false;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const { name, data } = parse(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
          if (name === "delta") {
            out.append(document.createTextNode(data.text));
            out.dataset.deltas = String(Number(out.dataset.deltas) + 1);
          } else if (name === "answer") {
            out.classList.remove("streaming");
            out.innerHTML = data.html; // rendered and escaped by the server
            out.dataset.answered = "true";
            history.push({ role: "user", content: question }, { role: "assistant", content: data.answer });
            answered = true;
          } else if (name === "error") {
            throw new Error(data.message);
          }
        }
      }
      if (!answered) throw new Error("the answer ended early");
    } catch (error) {
      out.classList.remove("streaming");
      out.classList.add("error");
      out.textContent = `error: ${error.message}`;
    } finally {
      button.disabled = false;
      input.focus();
    }
  });
})();
