/**
 * The example chat page: the official `ConvexClient` against calmsync, live.
 * Bundled to public/build/chat.js by `npm run build:web` (run before `dev`).
 */
import { ConvexClient } from "convex/browser";
import { anyApi, type FunctionReference } from "convex/server";

type Message = { _id: string; _creationTime: number; author: string; body: string };

const $ = <T extends HTMLElement>(selector: string) => document.querySelector(selector) as T;
const params = new URLSearchParams(location.search);
const deployment = params.get("deployment");
const base = deployment ? `${location.origin}/d/${deployment}` : location.origin;
const client = new ConvexClient(base, { skipConvexDeploymentUrlCheck: true });

const chatInput = $<HTMLInputElement>("#chat");
const authorInput = $<HTMLInputElement>("#author");
const list = $<HTMLOListElement>("#messages");
const status = $<HTMLSpanElement>("#status");
chatInput.value = params.get("chat") ?? "general";
authorInput.value = localStorage.getItem("calmsync-author") ?? `guest-${Math.floor(Math.random() * 1000)}`;

const searchInput = $<HTMLInputElement>("#search");
const results = $<HTMLOListElement>("#results");

function render(target: HTMLOListElement, messages: Message[]): void {
  target.replaceChildren(
    ...messages.map((m) => {
      const item = document.createElement("li");
      item.innerHTML = `<time></time> <b></b> <span></span>`;
      item.querySelector("time")!.textContent = new Date(m._creationTime).toLocaleTimeString();
      item.querySelector("b")!.textContent = m.author;
      item.querySelector("span")!.textContent = m.body;
      return item;
    }),
  );
}

/** One live subscription per list, replaced when its arguments change. */
function liveList(target: HTMLOListElement) {
  let unsubscribe: (() => void) | null = null;
  return (query: FunctionReference<"query">, args: Record<string, string> | null) => {
    unsubscribe?.();
    unsubscribe = null;
    target.replaceChildren();
    if (!args) return;
    unsubscribe = client.onUpdate(query, args, (messages: Message[]) => render(target, messages), (error) => (status.textContent = `query failed: ${error.message}`));
  };
}

const showMessages = liveList(list);
const showResults = liveList(results);
const watch = (chatId: string) => showMessages(anyApi.messages!.list!, { chatId });
const search = () => showResults(anyApi.messages!.search!, searchInput.value.trim() ? { chatId: chatInput.value, query: searchInput.value } : null);

chatInput.addEventListener("change", () => {
  watch(chatInput.value);
  search();
});
searchInput.addEventListener("input", search);
$<HTMLFormElement>("#send").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = $<HTMLInputElement>("#body");
  if (!body.value.trim()) return;
  localStorage.setItem("calmsync-author", authorInput.value);
  const text = body.value;
  body.value = "";
  try {
    await client.mutation(anyApi.messages!.send!, { chatId: chatInput.value, author: authorInput.value, body: text });
  } catch (error) {
    status.textContent = `send failed: ${(error as Error).message}`;
  }
});

client.subscribeToConnectionState((state) => {
  status.textContent = state.isWebSocketConnected ? "live" : "reconnecting…";
});
watch(chatInput.value);
