// workerd provides `node:async_hooks` under the `nodejs_als` compatibility flag; the Worker's
// type set (@cloudflare/workers-types) has no Node modules, so this declares the part the
// engine uses (the Node project's tsconfig has the real @types/node instead).
declare module "node:async_hooks" {
  export class AsyncLocalStorage<T> {
    getStore(): T | undefined;
    run<R>(store: T, callback: () => R): R;
  }
}
