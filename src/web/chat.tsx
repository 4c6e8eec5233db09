/**
 * The example chat page, written the way a Convex app is: React with
 * `convex/react` against calmsync. `useQuery` keeps the newest messages and
 * the search results live, `usePaginatedQuery` pages back through the
 * history ("load more") and `useMutation` sends. An image is attached the way
 * Convex's file storage does it: an upload URL from a mutation, the file POSTed
 * to it, its storage id sent with the message. Signing in goes through
 * `ConvexProviderWithAuth`, as with any auth provider; here the provider is
 * calmsync's local development issuer, which mints a short-lived token for a
 * name. Bundled to public/build/chat.js by `npm run build:web` (run before `dev`).
 */
import { StrictMode, useCallback, useMemo, useState, useSyncExternalStore, type FormEvent } from "react";
import { createRoot } from "react-dom/client";
import { ConvexProviderWithAuth, ConvexReactClient, useConvexAuth, useConvexConnectionState, useMutation, usePaginatedQuery, useQuery } from "convex/react";
import { api } from "../../convex/_generated/api";
import type { Doc, Id } from "../../convex/_generated/dataModel";

const params = new URLSearchParams(location.search);
const deployment = params.get("deployment");
const deploymentUrl = deployment ? `${location.origin}/d/${deployment}` : location.origin;
const client = new ConvexReactClient(deploymentUrl, { skipConvexDeploymentUrlCheck: true });

/**
 * Who this tab signs in as (kept for the tab's life in sessionStorage): the
 * state a real provider's SDK (Clerk's, Auth0's) would hold.
 */
const signedInName = {
  listeners: new Set<() => void>(),
  get: () => sessionStorage.getItem("calmsync-signed-in"),
  set(name: string | null) {
    if (name === null) sessionStorage.removeItem("calmsync-signed-in");
    else sessionStorage.setItem("calmsync-signed-in", name);
    for (const listener of signedInName.listeners) listener();
  },
  subscribe(listener: () => void) {
    signedInName.listeners.add(listener);
    return () => signedInName.listeners.delete(listener);
  },
};

/**
 * The `useAuth` hook `ConvexProviderWithAuth` takes, backed by the local dev
 * issuer. The client asks for a token when it connects and again (forced)
 * before the last one expires; a cached one is reused until then.
 */
function useDevIssuerAuth() {
  const name = useSyncExternalStore(signedInName.subscribe, signedInName.get);
  const cache = useMemo(() => ({ token: null as string | null, expiresAt: 0 }), [name]);
  const fetchAccessToken = useCallback(
    async ({ forceRefreshToken }: { forceRefreshToken: boolean }) => {
      if (name === null) return null;
      if (!forceRefreshToken && cache.token && cache.expiresAt - Date.now() > 30_000) return cache.token;
      const response = await fetch(`${deploymentUrl}/api/auth/dev-token`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ name }),
      });
      if (!response.ok) return null;
      Object.assign(cache, (await response.json()) as { token: string; expiresAt: number });
      return cache.token;
    },
    [name, cache],
  );
  return useMemo(() => ({ isLoading: false, isAuthenticated: name !== null, fetchAccessToken }), [name, fetchAccessToken]);
}

function SignIn() {
  const { isAuthenticated, isLoading } = useConvexAuth();
  const viewer = useQuery(api.users.viewer);
  const [name, setName] = useState("");
  if (isLoading) return <p id="signed-in">signing in…</p>;
  if (isAuthenticated && viewer) {
    return (
      <p id="signed-in">
        signed in as <b>{viewer.name}</b> <button onClick={() => signedInName.set(null)}>sign out</button>
      </p>
    );
  }
  return (
    <form
      id="sign-in"
      onSubmit={(event) => {
        event.preventDefault();
        if (name.trim()) signedInName.set(name.trim());
      }}
    >
      <input id="sign-in-name" placeholder="Your name" value={name} onChange={(e) => setName(e.target.value)} />
      <button>Sign in</button> <span className="hint">(local development issuer; anonymous sending works too)</span>
    </form>
  );
}

/** A message as the live list has it: an attached image comes with its URL. */
type Message = Doc<"messages"> & { imageUrl?: string | null };

function Messages({ messages, id }: { messages: Message[] | undefined; id: string }) {
  if (messages === undefined) return <p className="hint">loading…</p>;
  return (
    <ol id={id}>
      {messages.map((m) => (
        <li key={m._id}>
          <time>{new Date(m._creationTime).toLocaleTimeString()}</time> <b>{m.author}</b> <span>{m.body}</span>
          {m.imageUrl ? <img className="attachment" src={m.imageUrl} alt={m.body || "image"} /> : null}
        </li>
      ))}
    </ol>
  );
}

/** Attaches an image: upload URL, POST the file, send its storage id. */
function Attach({ chatId, author, onError }: { chatId: string; author: string; onError: (message: string | null) => void }) {
  const generateUploadUrl = useMutation(api.attachments.generateUploadUrl);
  const sendImage = useMutation(api.attachments.sendImage);
  const [busy, setBusy] = useState(false);
  const attach = async (file: File) => {
    setBusy(true);
    try {
      const response = await fetch(await generateUploadUrl(), { method: "POST", headers: { "Content-Type": file.type }, body: file });
      if (!response.ok) throw new Error(((await response.json()) as { message: string }).message);
      const { storageId } = (await response.json()) as { storageId: Id<"_storage"> };
      await sendImage({ chatId, author, storageId });
      onError(null);
    } catch (e) {
      onError(`attach failed: ${(e as Error).message}`);
    } finally {
      setBusy(false);
    }
  };
  return (
    <label className="attach">
      {busy ? "uploading…" : "attach image"}
      <input
        id="attach"
        type="file"
        accept="image/*"
        hidden
        disabled={busy}
        onChange={(e) => {
          const file = e.target.files?.[0];
          e.target.value = "";
          if (file) void attach(file);
        }}
      />
    </label>
  );
}

function Status() {
  const state = useConvexConnectionState();
  return <span id="status">{state.isWebSocketConnected ? "live" : "reconnecting…"}</span>;
}

function History({ chatId }: { chatId: string }) {
  const { results, status, loadMore } = usePaginatedQuery(api.messages.history, { chatId }, { initialNumItems: 10 });
  return (
    <section>
      <h2>History</h2>
      <Messages messages={status === "LoadingFirstPage" ? undefined : results} id="history" />
      <button id="load-more" disabled={status !== "CanLoadMore"} onClick={() => loadMore(10)}>
        {status === "Exhausted" ? "that is everything" : status === "CanLoadMore" ? "load more" : "loading…"}
      </button>
    </section>
  );
}

function Search({ chatId }: { chatId: string }) {
  const [text, setText] = useState("");
  const results = useQuery(api.messages.search, text.trim() ? { chatId, query: text } : "skip");
  return (
    <section>
      <h2>Search this chat</h2>
      <input
        id="search"
        placeholder="Type to search (the last word matches as a prefix)"
        autoComplete="off"
        value={text}
        onChange={(e) => setText(e.target.value)}
      />
      {text.trim() ? <Messages messages={results} id="results" /> : null}
    </section>
  );
}

function Chat() {
  const [chatId, setChatId] = useState(params.get("chat") ?? "general");
  const [author, setAuthor] = useState(() => localStorage.getItem("calmsync-author") ?? `guest-${Math.floor(Math.random() * 1000)}`);
  const [body, setBody] = useState("");
  const [error, setError] = useState<string | null>(null);
  const newest = useQuery(api.messages.list, { chatId });
  const send = useMutation(api.messages.send);
  const { isAuthenticated } = useConvexAuth();

  const submit = async (event: FormEvent) => {
    event.preventDefault();
    if (!body.trim()) return;
    localStorage.setItem("calmsync-author", author);
    const text = body;
    setBody("");
    try {
      await send({ chatId, author, body: text });
      setError(null);
    } catch (e) {
      setError(`send failed: ${(e as Error).message}`);
    }
  };

  return (
    <>
      <header>
        <h1>calmsync chat</h1>
        <nav>
          <a href="/dashboard">dashboard</a> · <Status />
          {error ? <span id="error"> · {error}</span> : null}
        </nav>
      </header>
      <main>
        <label>
          chat <input id="chat" value={chatId} onChange={(e) => setChatId(e.target.value)} />
        </label>
        <SignIn />
        {isAuthenticated ? null : (
          <label>
            you <input id="author" value={author} onChange={(e) => setAuthor(e.target.value)} />
          </label>
        )}
        <form id="send" onSubmit={submit}>
          <input id="body" placeholder="Say something" autoComplete="off" value={body} onChange={(e) => setBody(e.target.value)} />
          <button>Send</button> <Attach chatId={chatId} author={author} onError={setError} />
        </form>
        <p className="hint">Newest 20 messages, live. Open this page twice and talk to yourself.</p>
        <Messages messages={newest} id="messages" />
        <Search chatId={chatId} />
        <History key={chatId} chatId={chatId} />
      </main>
    </>
  );
}

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <ConvexProviderWithAuth client={client} useAuth={useDevIssuerAuth}>
      <Chat />
    </ConvexProviderWithAuth>
  </StrictMode>,
);
