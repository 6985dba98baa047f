// Whether the plugin runs from its own files (installed as a package, or its folder copied) or bundled into
// an app's single file by esbuild, webpack or ncc. Bundled, two of its parts cannot work: the TCP_INFO addon
// is loaded by a path relative to tcp-info's own file, and the accept-queue sampler's worker thread runs
// its own module, which in a bundle is the whole app, started a second time inside that thread. A bundler
// gives every module the bundle's import.meta.url (esbuild's ESM output) or none at all (CommonJS output),
// so this module's URL still naming this module is the test.

const url: string | undefined = import.meta.url

/** The bundle the plugin was bundled into (its URL, or a CommonJS bundle's file), or undefined when it was not. */
export const bundledInto: string | undefined = url !== undefined && /\/bundled\.[cm]?[jt]s$/.test(url)
  ? undefined
  : url ?? (typeof __filename === 'string' ? __filename : 'a CommonJS bundle')
