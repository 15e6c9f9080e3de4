import sharp from 'sharp';
import { decodeImage } from './decode.ts';
import type { DatasetItem, RgbImage } from './types.ts';

/**
 * Decoded dataset images, small LRU: a class's prototypes and their nearest
 * patches keep coming back to the same few images.
 */
export class ImageCache {
  private readonly entries = new Map<string, Promise<RgbImage>>();
  private readonly sizes = new Map<string, Promise<{ width: number; height: number }>>();
  private readonly capacity: number;

  constructor(capacity = 96) {
    this.capacity = capacity;
  }

  image(item: DatasetItem): Promise<RgbImage> {
    const key = item.path;
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key);
      this.entries.set(key, hit);
      return hit;
    }
    const p = decodeImage(item.path, { box: item.box });
    this.entries.set(key, p);
    if (this.entries.size > this.capacity) this.entries.delete(this.entries.keys().next().value!);
    return p;
  }

  /** Size of the image as the model sees it (after the dataset's crop), without decoding pixels. */
  size(item: DatasetItem): Promise<{ width: number; height: number }> {
    let p = this.sizes.get(item.path);
    if (!p) {
      p = item.box
        ? this.image(item).then((im) => ({ width: im.width, height: im.height }))
        : sharp(item.path)
            .metadata()
            .then((m) => ({ width: m.width!, height: m.height! }));
      this.sizes.set(item.path, p);
    }
    return p;
  }
}
