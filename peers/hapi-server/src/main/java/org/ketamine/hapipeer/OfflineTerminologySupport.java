package org.ketamine.hapipeer;

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.ConceptValidationOptions;
import ca.uhn.fhir.context.support.ValidationSupportContext;
import org.hl7.fhir.common.hapi.validation.support.BaseValidationSupport;
import org.hl7.fhir.instance.model.api.IBaseResource;
import org.hl7.fhir.r4.model.CanonicalType;
import org.hl7.fhir.r4.model.ValueSet;

import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Claims the large external code systems that cannot be checked offline (LOINC, SNOMED CT, RxNorm, CPT, HCPCS,
 * ICD-10-CM, NDC, X12, CMS Place of Service) and answers "valid, not checked offline" (INFORMATION) for their
 * codes, also inside value sets whose expansion needs one of them. Same approach as the project's validator
 * tool (validator/.../OfflineTerminologySupport.java), kept separate so the peer builds on its own.
 */
public final class OfflineTerminologySupport extends BaseValidationSupport {

	private static final List<String> EXACT = List.of(
			"http://loinc.org",
			"http://snomed.info/sct",
			"http://www.nlm.nih.gov/research/umls/rxnorm",
			"http://www.ama-assn.org/go/cpt",
			"http://www.cms.gov/medicare/coding/hcpcsreleasecodesets",
			"https://www.cms.gov/medicare/coding/hcpcsreleasecodesets",
			"http://hl7.org/fhir/sid/icd-10-cm",
			"http://hl7.org/fhir/sid/ndc");

	private static final List<String> PREFIXES = List.of(
			"https://codesystem.x12.org/", "http://codesystem.x12.org/",
			"https://valueset.x12.org/", "http://valueset.x12.org/",
			"https://www.cms.gov/medicare/coding/place-of-service-codes/",
			"http://www.cms.gov/medicare/coding/place-of-service-codes/",
			"http://snomed.info/sct/");

	private final Map<String, Boolean> myNeedsExternal = new ConcurrentHashMap<>();

	public OfflineTerminologySupport(FhirContext theContext) {
		super(theContext);
	}

	@Override
	public String getName() {
		return "OfflineTerminologySupport";
	}

	public static boolean isExternal(String theSystem) {
		if (theSystem == null || theSystem.isBlank()) {
			return false;
		}
		String s = theSystem;
		int bar = s.indexOf('|');
		if (bar >= 0) {
			s = s.substring(0, bar);
		}
		s = s.trim().toLowerCase(Locale.ROOT);
		if (s.endsWith("/") && EXACT.contains(s.substring(0, s.length() - 1))) {
			return true;
		}
		if (EXACT.contains(s)) {
			return true;
		}
		for (String p : PREFIXES) {
			if (s.startsWith(p)) {
				return true;
			}
		}
		return false;
	}

	public static boolean mentionsExternal(String theText) {
		if (theText == null) {
			return false;
		}
		String t = theText.toLowerCase(Locale.ROOT);
		for (String e : EXACT) {
			if (t.contains(e)) {
				return true;
			}
		}
		for (String p : PREFIXES) {
			if (t.contains(p)) {
				return true;
			}
		}
		return false;
	}

	@Override
	public boolean isCodeSystemSupported(ValidationSupportContext theContext, String theSystem) {
		return isExternal(theSystem);
	}

	@Override
	public boolean isValueSetSupported(ValidationSupportContext theContext, String theValueSetUrl) {
		IBaseResource vs = theContext.getRootValidationSupport().fetchValueSet(theValueSetUrl);
		return vs instanceof ValueSet v && needsExternal(theContext, v, new HashSet<>());
	}

	private boolean needsExternal(ValidationSupportContext theContext, ValueSet theVs, Set<String> theSeen) {
		String url = theVs.getUrl();
		if (url != null) {
			Boolean cached = myNeedsExternal.get(url);
			if (cached != null) {
				return cached;
			}
			if (!theSeen.add(url)) {
				return false;
			}
		}
		boolean result = false;
		outer:
		for (ValueSet.ConceptSetComponent inc : theVs.getCompose().getInclude()) {
			if (isExternal(inc.getSystem()) && (inc.hasFilter() || !inc.hasConcept())) {
				result = true;
				break;
			}
			for (CanonicalType sub : inc.getValueSet()) {
				IBaseResource subVs = theContext.getRootValidationSupport().fetchValueSet(sub.getValue());
				if (subVs instanceof ValueSet s && needsExternal(theContext, s, theSeen)) {
					result = true;
					break outer;
				}
			}
		}
		if (url != null) {
			myNeedsExternal.put(url, result);
		}
		return result;
	}

	private CodeValidationResult notChecked(String theSystem, String theCode, String theDisplay) {
		String msg = "not checked offline: code '" + theCode + "' in " + theSystem;
		CodeValidationIssue issue = new CodeValidationIssue(msg, IssueSeverity.INFORMATION, "informational");
		issue.getDetails().getCodings().clear();
		return new CodeValidationResult().setCode(theCode).setDisplay(theDisplay).setCodeSystemName(theSystem)
				.setSeverity(IssueSeverity.INFORMATION).setMessage(msg).addIssue(issue);
	}

	@Override
	public CodeValidationResult validateCode(ValidationSupportContext theContext, ConceptValidationOptions theOptions,
			String theCodeSystem, String theCode, String theDisplay, String theValueSetUrl) {
		if (theValueSetUrl != null && !theValueSetUrl.isBlank()) {
			IBaseResource vs = theContext.getRootValidationSupport().fetchValueSet(theValueSetUrl);
			return vs == null ? null
					: validateCodeInValueSet(theContext, theOptions, theCodeSystem, theCode, theDisplay, vs);
		}
		return isExternal(theCodeSystem) ? notChecked(theCodeSystem, theCode, theDisplay) : null;
	}

	@Override
	public CodeValidationResult validateCodeInValueSet(ValidationSupportContext theContext,
			ConceptValidationOptions theOptions, String theCodeSystem, String theCode, String theDisplay,
			IBaseResource theValueSet) {
		if (!(theValueSet instanceof ValueSet vs) || !needsExternal(theContext, vs, new HashSet<>())) {
			return null;
		}
		if (isExternal(theCodeSystem)) {
			return notChecked(theCodeSystem, theCode, theDisplay);
		}
		if ((theCodeSystem == null || theCodeSystem.isBlank()) && vs.getCompose().hasInclude()
				&& vs.getCompose().getInclude().stream().allMatch(i -> isExternal(i.getSystem()))) {
			return notChecked(vs.getCompose().getIncludeFirstRep().getSystem(), theCode, theDisplay);
		}
		return null;
	}
}
