/** A `BlobStore` in memory: for tests and benchmarks in plain Node (a deployment keeps bytes in R2). */
import type { BlobStore } from "./file-storage.ts";

export class MemoryBlobStore implements BlobStore {
  readonly blobs = new Map<string, Blob>();

  async put(storageId: string, blob: Blob): Promise<void> {
    this.blobs.set(storageId, blob);
  }

  async get(storageId: string): Promise<Blob | null> {
    return this.blobs.get(storageId) ?? null;
  }

  async delete(storageId: string): Promise<void> {
    this.blobs.delete(storageId);
  }
}
