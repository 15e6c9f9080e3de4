import type { BackboneRecipe } from './types.ts';

/** `(await import(recipe.module))[recipe.factory](recipe.options)`, with a clear error when the export is missing. */
export async function buildFromRecipe<T>(recipe: BackboneRecipe): Promise<T> {
  const mod = (await import(recipe.module)) as Record<string, (o: unknown) => Promise<T> | T>;
  const factory = mod[recipe.factory];
  if (typeof factory !== 'function') throw new Error(`${recipe.module} has no export ${recipe.factory}`);
  return factory(recipe.options);
}
