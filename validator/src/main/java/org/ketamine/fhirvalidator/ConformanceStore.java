package org.ketamine.fhirvalidator;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.parser.IParser;
import ca.uhn.fhir.parser.ErrorHandlerAdapter;
import org.hl7.fhir.common.hapi.validation.support.PrePopulatedValidationSupport;
import org.hl7.fhir.instance.model.api.IBaseResource;
import org.hl7.fhir.r4.model.MetadataResource;
import org.hl7.fhir.utilities.npm.NpmPackage;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.stream.Stream;

/**
 * Conformance resources from IG packages (.tgz) and from loose JSON files. StructureDefinitions, ValueSets,
 * CodeSystems and SearchParameters are served by the {@link PrePopulatedValidationSupport} base; every other
 * canonical resource (Questionnaire, ...) is served by {@link #fetchResource(Class, String)}.
 *
 * <p>Canonical keys: each resource is reachable by url, url|version and (for the last one loaded) by the
 * unversioned url. Packages are loaded in the order given, so the package loaded last wins for unversioned
 * canonicals (we load US Core 7.0.0 after 3.1.1).
 */
public final class ConformanceStore extends PrePopulatedValidationSupport {

	/** A loaded IG package. */
	public record LoadedPackage(String name, String version, String file, int resources, List<String> dependencies) {}

	private final FhirContext myCtx;
	private final Map<String, IBaseResource> myOther = new ConcurrentHashMap<>();
	private final List<LoadedPackage> myPackages = new ArrayList<>();
	private final List<String> myLoadProblems = new ArrayList<>();
	private final Map<String, String> myUrlToPackage = new LinkedHashMap<>();
	private int myExtraCount;

	public ConformanceStore(FhirContext theCtx) {
		super(theCtx);
		myCtx = theCtx;
	}

	@Override
	public String getName() {
		return "ConformanceStore";
	}

	private IParser parser() {
		IParser p = myCtx.newJsonParser();
		p.setParserErrorHandler(new ErrorHandlerAdapter()); // lenient and silent: IG JSON may carry R5-only elements
		return p;
	}

	public LoadedPackage loadPackage(Path theTgz) throws IOException {
		NpmPackage pkg;
		try (InputStream is = Files.newInputStream(theTgz)) {
			pkg = NpmPackage.fromPackage(is);
		}
		NpmPackage.NpmPackageFolder folder = pkg.getFolders().get("package");
		int count = 0;
		IParser parser = parser();
		if (folder != null) {
			List<String> files = new ArrayList<>(folder.listFiles());
			files.sort(null);
			for (String file : files) {
				String lower = file.toLowerCase(Locale.ROOT);
				if (!lower.endsWith(".json") || lower.equals("package.json") || lower.startsWith(".")) {
					continue;
				}
				String json = new String(folder.getContent().get(file), StandardCharsets.UTF_8);
				String type = quickResourceType(json);
				if (type == null || !isConformanceType(type)) {
					continue;
				}
				try {
					IBaseResource res = parser.parseResource(json);
					if (add(res, pkg.name() + "#" + pkg.version())) {
						count++;
					}
				} catch (Exception e) {
					myLoadProblems.add(theTgz.getFileName() + "/" + file + ": " + e.getMessage());
				}
			}
		}
		LoadedPackage lp = new LoadedPackage(pkg.name(), pkg.version(), theTgz.getFileName().toString(), count,
				pkg.dependencies());
		myPackages.add(lp);
		return lp;
	}

	/** Loads every *.json file (a conformance resource or a Bundle of them) from a directory, non-recursive. */
	public int loadDirectory(Path theDir) throws IOException {
		if (!Files.isDirectory(theDir)) {
			return 0;
		}
		List<Path> files;
		try (Stream<Path> s = Files.list(theDir)) {
			files = s.filter(p -> p.getFileName().toString().toLowerCase(Locale.ROOT).endsWith(".json"))
					.sorted()
					.toList();
		}
		int count = 0;
		IParser parser = parser();
		for (Path f : files) {
			try {
				String json = Files.readString(f, StandardCharsets.UTF_8);
				IBaseResource res = parser.parseResource(json);
				if (res instanceof org.hl7.fhir.r4.model.Bundle b) {
					for (var e : b.getEntry()) {
						if (e.getResource() != null && add(e.getResource(), f.toString())) {
							count++;
						}
					}
				} else if (add(res, f.toString())) {
					count++;
				}
			} catch (Exception e) {
				myLoadProblems.add(f + ": " + e.getMessage());
			}
		}
		myExtraCount += count;
		return count;
	}

	private static String quickResourceType(String theJson) {
		int idx = theJson.indexOf("\"resourceType\"");
		if (idx < 0) {
			return null;
		}
		int colon = theJson.indexOf(':', idx);
		int q1 = theJson.indexOf('"', colon + 1);
		int q2 = theJson.indexOf('"', q1 + 1);
		if (colon < 0 || q1 < 0 || q2 < 0) {
			return null;
		}
		return theJson.substring(q1 + 1, q2);
	}

	private static boolean isConformanceType(String theType) {
		return switch (theType) {
			case "StructureDefinition", "ValueSet", "CodeSystem", "SearchParameter", "Questionnaire",
					"ConceptMap", "NamingSystem" -> true;
			default -> false;
		};
	}

	private boolean add(IBaseResource theRes, String theSource) {
		String type = myCtx.getResourceType(theRes);
		switch (type) {
			case "StructureDefinition", "ValueSet", "CodeSystem", "SearchParameter" -> {
				addResource(theRes);
				if (theRes instanceof MetadataResource m && m.hasUrl()) {
					myUrlToPackage.put(m.getUrl(), theSource);
				}
				return true;
			}
			default -> {
				if (theRes instanceof MetadataResource m && m.hasUrl()) {
					String url = m.getUrl();
					int bar = url.indexOf('|');
					String base = bar >= 0 ? url.substring(0, bar) : url;
					myOther.put(type + "|" + base, theRes);
					if (m.hasVersion()) {
						myOther.put(type + "|" + base + "|" + m.getVersion(), theRes);
					}
					myUrlToPackage.put(base, theSource);
					return true;
				}
				return false;
			}
		}
	}

	@Override
	@SuppressWarnings("unchecked")
	public <T extends IBaseResource> T fetchResource(Class<T> theClass, String theUri) {
		if (theClass != null) {
			String type = myCtx.getResourceType(theClass);
			if (!"StructureDefinition".equals(type) && !"ValueSet".equals(type) && !"CodeSystem".equals(type)) {
				IBaseResource r = myOther.get(type + "|" + theUri);
				if (r != null) {
					return (T) r;
				}
			}
		}
		return super.fetchResource(theClass, theUri);
	}

	public List<LoadedPackage> packages() {
		return myPackages;
	}

	public List<String> loadProblems() {
		return myLoadProblems;
	}

	public int extraCount() {
		return myExtraCount;
	}

	public int otherCount() {
		return (int) myOther.values().stream().distinct().count();
	}
}
