/**
 * The example chat page, written the way a Convex app is: React with
 * `convex/react` against calmsync. `useQuery` keeps the newest messages and
 * the search results live, `usePaginatedQuery` pages back through the
 * history ("load more") and `useMutation` sends. An image is attached the way
 * Convex's file storage does it: an upload URL from a mutation, the file POSTed
 * to it, its storage id sent with the message. Signing in is Convex Auth's
 * (`@convex-dev/auth`, convex/auth.ts): `ConvexAuthProvider` around the app,
 * an email and password form that signs up or in with `useAuthActions()`, as
 * its docs show; its tokens are kept in localStorage and refreshed by the
 * library. Bundled to public/build/chat.js by `npm run build:web` (run before `dev`).
 */
import { StrictMode, useState, type FormEvent } from "react";
import { createRoot } from "react-dom/client";
import { ConvexReactClient, useConvexAuth, useConvexConnectionState, useMutation, usePaginatedQuery, useQuery } from "convex/react";
import { ConvexAuthProvider, useAuthActions } from "@convex-dev/auth/react";
import { api } from "../../convex/_generated/api";
import type { Doc, Id } from "../../convex/_generated/dataModel";

const params = new URLSearchParams(location.search);
const deployment = params.get("deployment");
const deploymentUrl = deployment ? `${location.origin}/d/${deployment}` : location.origin;
const client = new ConvexReactClient(deploymentUrl, { skipConvexDeploymentUrlCheck: true });

/**
 * What to tell the user when signing up or in failed. The server's own
 * message is the line after "Uncaught Error:" (a deployment that hides
 * function details says only "Server Error").
 */
function signInProblem(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  if (/Missing environment variable `(JWT_PRIVATE_KEY|JWKS)`/.test(message))
    return "Sign-in is not set up on this server: Convex Auth's keys (JWT_PRIVATE_KEY, JWKS) are missing. `npm run dev` creates them in .dev.vars; `npm run auth:keys -- --set` sets them on a deployment.";
  if (/InvalidSecret|InvalidAccountId|Invalid credentials/.test(message)) return "Wrong email or password.";
  return /Uncaught Error: ([^\n]*)/.exec(message)?.[1] ?? message;
}

function SignIn() {
  const { isAuthenticated, isLoading } = useConvexAuth();
  const { signIn, signOut } = useAuthActions();
  const viewer = useQuery(api.users.viewer);
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);
  if (isLoading) return <p id="signed-in">signing in…</p>;
  if (isAuthenticated) {
    return (
      <p id="signed-in">
        signed in as <b>{viewer?.name ?? "…"}</b>{" "}
        <button id="sign-out" onClick={() => void signOut()}>
          sign out
        </button>
      </p>
    );
  }
  const submit = (flow: "signUp" | "signIn") => async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setProblem(null);
    try {
      await signIn("password", { email, password, flow });
      setPassword("");
    } catch (error) {
      setProblem(signInProblem(error));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form id="sign-in" onSubmit={submit("signIn")}>
      <input id="email" type="email" placeholder="Email" autoComplete="username" value={email} onChange={(e) => setEmail(e.target.value)} />
      <input
        id="password"
        type="password"
        placeholder="Password (8+ characters)"
        autoComplete="current-password"
        value={password}
        onChange={(e) => setPassword(e.target.value)}
      />
      <button id="sign-in-button" disabled={busy}>
        Sign in
      </button>{" "}
      <button id="sign-up" type="button" disabled={busy} onClick={submit("signUp")}>
        Sign up
      </button>{" "}
      <span className="hint">(anonymous sending works too)</span>
      {problem ? <p id="sign-in-error">{problem}</p> : null}
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
    <ConvexAuthProvider client={client}>
      <Chat />
    </ConvexAuthProvider>
  </StrictMode>,
);
